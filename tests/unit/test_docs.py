"""The configuration reference documents every key of the config model."""

from pathlib import Path

from pydantic import BaseModel

from subsidyhub.settings import Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and name != "profiles"
        ):
            out.extend(keys(annotation, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return out


def test_every_config_key_is_documented():
    text = DOC.read_text(encoding="utf-8")
    missing = [key for key in keys(Settings) if f"`{key}" not in text]
    assert missing == []


def test_every_limit_default_is_documented_with_its_declared_help():
    from subsidyhub import limits

    text = DOC.read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")
    }
    for limit in limits.LIMITS:
        assert limit.help in rows[f"`defaults.{limit.name}`"], limit.name
