{{- define "storesync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "storesync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "storesync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "storesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: storesync
{{- end }}

{{- define "storesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "storesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "storesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "storesync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /* The ClusterRole helm runs with in each store namespace (bound there by storesync). */}}
{{- define "storesync.storeClusterRole" -}}
{{- required "rbac.storeClusterRole is required: the ClusterRole storesync binds in every store namespace" .Values.rbac.storeClusterRole }}
{{- end }}

{{- /* The user storesync's own ServiceAccount authenticates as (admission policies match it). */}}
{{- define "storesync.user" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "storesync.serviceAccountName" .) }}
{{- end }}
