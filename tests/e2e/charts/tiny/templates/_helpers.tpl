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

{{/*
Retired (the platform value `retired`, as in the engine charts' `woocommerce.retired`): "true"
when the store is retired, "" otherwise; anything but a boolean fails the render. A retired
store runs no pod (the Deployment at 0 replicas) and keeps everything else as rendered when
live: the ConfigMap, the claim, the credentials wiring. The tiny chart renders no Ingress and no
hook, so there is nothing else to leave out.
*/}}
{{- define "tiny.retired" -}}
{{- $retired := .Values.retired | default false -}}
{{- if not (kindIs "bool" $retired) -}}
{{- fail (printf "retired must be true or false, not %v (%s)" $retired (kindOf $retired)) -}}
{{- end -}}
{{- if $retired }}true{{ end -}}
{{- end -}}

{{/* Replicas of the Deployment: 1, or 0 when the store is retired. */}}
{{- define "tiny.replicas" -}}
{{- if include "tiny.retired" . }}0{{ else }}1{{ end -}}
{{- end -}}
