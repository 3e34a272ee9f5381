{{/* Names and labels shared by every object of the chart. */}}
{{- define "subsidyhub.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Every object is named this (the Service, the ConfigMap the hub mounts, the NetworkPolicy…). */}}
{{- define "subsidyhub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "subsidyhub.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "subsidyhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "subsidyhub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The component label does not change with nameOverride/fullnameOverride: the z2jh overlay
(helm/jupyterhub-values.yaml) lets the hub, the proxy and user servers reach pods carrying it.
*/}}
{{- define "subsidyhub.labels" -}}
{{ include "subsidyhub.selectorLabels" . }}
app.kubernetes.io/component: subsidy-service
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The pods' labels: podLabels first, so the chart's own labels (the selector) always win. */}}
{{- define "subsidyhub.podLabels" -}}
{{- $labels := merge (fromYaml (include "subsidyhub.labels" .)) (deepCopy (.Values.podLabels | default dict)) -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* The chart's own Secret (database-url) or the operator's. */}}
{{- define "subsidyhub.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "subsidyhub.fullname" .)) -}}
{{- end -}}

{{/* The z2jh release: its objects are "hub", … or "<fullname>-hub", … (z2jh _helpers-names.tpl). */}}
{{- define "subsidyhub.jupyterhub.hubName" -}}
{{- if .Values.jupyterhub.fullname -}}
{{- printf "%s-hub" .Values.jupyterhub.fullname -}}
{{- else -}}
hub
{{- end -}}
{{- end -}}

{{- define "subsidyhub.jupyterhub.apiUrl" -}}
{{- .Values.jupyterhub.apiUrl | default (printf "http://%s:8081/hub/api" (include "subsidyhub.jupyterhub.hubName" .)) -}}
{{- end -}}

{{/* z2jh's hub Secret holds a generated token for every hub.services.<name> without an apiToken. */}}
{{- define "subsidyhub.jupyterhub.tokenSecretName" -}}
{{- .Values.jupyterhub.hubTokenSecret.name | default (include "subsidyhub.jupyterhub.hubName" .) -}}
{{- end -}}

{{- define "subsidyhub.metricsTokenSecretName" -}}
{{- .Values.serviceMonitor.tokenSecret.name | default (include "subsidyhub.jupyterhub.hubName" .) -}}
{{- end -}}

{{/*
matchLabels of a z2jh component's pods (z2jh's "jupyterhub.matchLabels": component, app, release).
Called with (dict "root" $ "component" "hub").
*/}}
{{- define "subsidyhub.jupyterhub.matchLabels" -}}
{{- $values := .root.Values.jupyterhub -}}
app: {{ $values.name | default "jupyterhub" | quote }}
component: {{ .component | quote }}
{{- with $values.release }}
release: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* subsidyhub.yaml: config, pointing image_catalog at catalog.yaml beside it when catalog is set. */}}
{{- define "subsidyhub.configFile" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- if .Values.catalog -}}
{{- $_ := set $config "image_catalog" "catalog.yaml" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
Fail at install with a message saying what to set, rather than a crash-looping pod. Keys
removed in 0.2.0 stay in values.schema.json (as "deprecated") so that these messages, saying
where each moved, fire instead of a generic "additional properties" error.
*/}}
{{- define "subsidyhub.checks" -}}
{{- if hasKey .Values "hub" -}}
{{- fail "hub.apiUrl was removed in chart 0.2.0: it is now jupyterhub.apiUrl, and may stay unset (derived from jupyterhub.fullname: http://hub:8081/hub/api for z2jh's default names). Delete the hub: block." -}}
{{- end -}}
{{- if hasKey .Values.networkPolicy "jupyterhubRelease" -}}
{{- fail "networkPolicy.jupyterhubRelease was removed in chart 0.2.0: it is now jupyterhub.release (the z2jh release name; empty: any release in this namespace)." -}}
{{- end -}}
{{- if hasKey .Values.secret "hubToken" -}}
{{- fail "secret.hubToken was removed in chart 0.2.0: the service now reads the token z2jh generates for hub.services.subsidy from z2jh's hub Secret (jupyterhub.hubTokenSecret; default: Secret \"hub\", key hub.services.subsidy.apiToken). Delete secret.hubToken here and the apiToken of hub.services.subsidy in your z2jh values (z2jh then generates one); a Secret of your own (secret.existingSecret) now needs only the key database-url." -}}
{{- end -}}
{{- if not .Values.secret.existingSecret -}}
{{- $url := required "secret.databaseUrl is required (postgresql+psycopg://USER:PASSWORD@HOST/DB), or set secret.existingSecret to a Secret with the key database-url" .Values.secret.databaseUrl -}}
{{- if not (hasPrefix "postgresql" $url) -}}
{{- fail (printf "secret.databaseUrl must be a PostgreSQL URL (postgresql+psycopg://USER:PASSWORD@HOST/DB), not %s: the ledger is the money record of the centre, and SQLite on a pod's disk is lost with the pod and cannot be shared by several replicas or by the old and new pods of a rolling update (docs/decisions/kubernetes-database.md)" (regexReplaceAll "^([^:]*):.*$" $url "${1}:…")) -}}
{{- end -}}
{{- end -}}
{{- with .Values.jupyterhub.hubTokenSecret.key -}}
{{- $service := regexReplaceAll "^/services/([a-z0-9-]+)/$" $.Values.service.prefix "${1}" -}}
{{- if and (regexMatch "^hub\\.services\\.[^.]+\\.apiToken$" .) (ne . (printf "hub.services.%s.apiToken" $service)) -}}
{{- fail (printf "jupyterhub.hubTokenSecret.key %s is the token of another z2jh service than service.prefix %s registers: set it to hub.services.%s.apiToken, the token z2jh generates for hub.services.%s" . $.Values.service.prefix $service $service) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.catalog .Values.config.image_catalog -}}
{{- fail "set catalog or config.image_catalog, not both: with catalog set, the chart writes catalog.yaml beside subsidyhub.yaml and points image_catalog at it" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be less than replicaCount (%d): otherwise no pod may ever be evicted and node drains hang" (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- end -}}
{{- end -}}
