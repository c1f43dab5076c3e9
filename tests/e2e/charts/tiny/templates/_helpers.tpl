{{/* The release is named after the store; every object is named after the release. */}}
{{- define "tiny.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tiny.selectorLabels" -}}
app.kubernetes.io/name: tiny
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tiny.labels" -}}
{{ include "tiny.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
