{{/* Names and labels shared by every object of the chart. */}}
{{- define "subsidyhub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "subsidyhub.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "subsidyhub.labels" -}}
{{ include "subsidyhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "subsidyhub.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "subsidyhub.fullname" .)) -}}
{{- end -}}

{{/* Fail at install with a message saying what to set, rather than a crash-looping pod. */}}
{{- define "subsidyhub.checks" -}}
{{- if not .Values.secret.existingSecret -}}
{{- required "secret.hubToken is required (the same token as hub.services.subsidy.apiToken in the z2jh values), or set secret.existingSecret" .Values.secret.hubToken | trunc 0 -}}
{{- required "secret.databaseUrl is required (postgresql+psycopg://...), or set secret.existingSecret" .Values.secret.databaseUrl | trunc 0 -}}
{{- if and (gt (int .Values.replicaCount) 1) (hasPrefix "sqlite" .Values.secret.databaseUrl) -}}
{{- fail "replicaCount > 1 needs PostgreSQL: SQLite cannot be shared by several pods; set replicaCount: 1 or a postgresql+psycopg:// databaseUrl" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.serviceMonitor.tokenSecret.name) -}}
{{- fail "serviceMonitor.tokenSecret.name is required when serviceMonitor.enabled: /metrics needs a hub token with scope read:metrics" -}}
{{- end -}}
{{- end -}}
