{{/* Chart name, overridable. */}}
{{- define "woocommerce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix: the release name. Each store has its own namespace, so the release name
alone is unique and keeps names short (StatefulSet names must stay under 52 characters).
*/}}
{{- define "woocommerce.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "woocommerce.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "woocommerce.labels" -}}
helm.sh/chart: {{ include "woocommerce.chart" . }}
{{ include "woocommerce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: woocommerce
{{- with .Values.store.name }}
storesync.dev/store: {{ . | quote }}
{{- end }}
{{- with .Values.store.plan }}
storesync.dev/plan: {{ . | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "woocommerce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "woocommerce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Component labels: call with (dict "ctx" $ "component" "wordpress"). */}}
{{- define "woocommerce.componentLabels" -}}
{{ include "woocommerce.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "woocommerce.componentSelectorLabels" -}}
{{ include "woocommerce.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Secret holding the store credentials (the platform's, or the chart's own). */}}
{{- define "woocommerce.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else }}
{{- printf "%s-credentials" .Release.Name }}
{{- end }}
{{- end }}

{{- define "woocommerce.mariadbName" -}}
{{- printf "%s-mariadb" (include "woocommerce.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "woocommerce.wordpressName" -}}
{{- printf "%s-wordpress" (include "woocommerce.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Host the shop is served on; required because WordPress stores its own URL. */}}
{{- define "woocommerce.host" -}}
{{- required "ingress.host is required: WordPress is installed with https?://<ingress.host> as its URL" .Values.ingress.host }}
{{- end }}

{{- define "woocommerce.url" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) (include "woocommerce.host" .) }}
{{- end }}

{{- define "woocommerce.image" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{/* Pod security context merged with a component's fsGroup/uid: (dict "ctx" $ "uid" 33). */}}
{{- define "woocommerce.podSecurityContext" -}}
{{- $sc := deepCopy .ctx.Values.podSecurityContext }}
{{- $_ := set $sc "runAsUser" .uid }}
{{- $_ := set $sc "runAsGroup" .uid }}
{{- $_ := set $sc "fsGroup" .uid }}
{{- $_ := set $sc "fsGroupChangePolicy" "OnRootMismatch" }}
{{- toYaml $sc }}
{{- end }}

{{/* Container security context; (dict "ctx" $ "readOnlyRootFilesystem" true). */}}
{{- define "woocommerce.containerSecurityContext" -}}
{{- $sc := deepCopy .ctx.Values.containerSecurityContext }}
{{- $_ := set $sc "readOnlyRootFilesystem" .readOnlyRootFilesystem }}
{{- toYaml $sc }}
{{- end }}

{{/* Environment every WordPress/WP-CLI container needs to reach the database. */}}
{{- define "woocommerce.dbEnv" -}}
- name: WORDPRESS_DB_HOST
  value: {{ printf "%s:3306" (include "woocommerce.mariadbName" .) | quote }}
- name: WORDPRESS_DB_NAME
  value: {{ .Values.mariadb.database | quote }}
- name: WORDPRESS_DB_USER
  value: {{ .Values.mariadb.username | quote }}
# Read from the mounted Secret by wp-config.php (getenv_docker), so the password is neither in
# the pod spec nor in the process environment that phpinfo() would show.
- name: WORDPRESS_DB_PASSWORD_FILE
  value: /etc/store-credentials/database-password
{{- end }}

{{/*
Requests and limits of a component for the store's plan: (dict "ctx" $ "component" "wordpress").
A plan resourcesByPlan does not list, or none (a standalone install), takes `small`.
*/}}
{{- define "woocommerce.resources" -}}
{{- $plans := .ctx.Values.resourcesByPlan | default dict -}}
{{- $plan := .ctx.Values.store.plan | default "small" -}}
{{- if not (hasKey $plans $plan) }}{{ $plan = "small" }}{{ end -}}
{{- $resources := index (index $plans $plan | default dict) .component -}}
{{- if not $resources -}}
{{- fail (printf "resourcesByPlan.%s.%s is missing: give the component requests and limits for that plan" $plan .component) -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end }}

{{/*
Retired (the platform value `retired`): "true" when the store is retired, "" otherwise. Fails
on anything but a boolean, so a quoted "false" can never stop a running store by accident.
A retired store keeps every object that holds data (its PersistentVolumeClaims, the
StatefulSet's volumeClaimTemplates, the credentials wiring) exactly as rendered when live;
it only runs no pod (every Deployment and StatefulSet at 0 replicas), serves no Ingress and
runs no setup hook (it would wait for a database that is stopped).
*/}}
{{- define "woocommerce.retired" -}}
{{- $retired := .Values.retired | default false -}}
{{- if not (kindIs "bool" $retired) -}}
{{- fail (printf "retired must be true or false, not %v (%s)" $retired (kindOf $retired)) -}}
{{- end -}}
{{- if $retired }}true{{ end -}}
{{- end }}

{{/* Replicas of every Deployment and StatefulSet: 1, or 0 when the store is retired. */}}
{{- define "woocommerce.replicas" -}}
{{- if include "woocommerce.retired" . }}0{{ else }}1{{ end -}}
{{- end }}
