"""``python -m subsidyhub.service``: see :mod:`subsidyhub.service.run`."""

from subsidyhub.service.run import main

main()
