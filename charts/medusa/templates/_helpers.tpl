{{/* Chart name, overridable. */}}
{{- define "medusa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix: the release name. Each store has its own namespace, so the release name
alone is unique and keeps names short (StatefulSet names must stay under 52 characters).
*/}}
{{- define "medusa.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "medusa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "medusa.labels" -}}
helm.sh/chart: {{ include "medusa.chart" . }}
{{ include "medusa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: medusa
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

{{- define "medusa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medusa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Component labels: call with (dict "ctx" $ "component" "backend"). */}}
{{- define "medusa.componentLabels" -}}
{{ include "medusa.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "medusa.componentSelectorLabels" -}}
{{ include "medusa.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Secret holding the store credentials (the platform's, or the chart's own). */}}
{{- define "medusa.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else }}
{{- printf "%s-credentials" .Release.Name }}
{{- end }}
{{- end }}

{{- define "medusa.postgresName" -}}
{{- printf "%s-postgres" (include "medusa.fullname" .) }}
{{- end }}

{{- define "medusa.redisName" -}}
{{- printf "%s-redis" (include "medusa.fullname" .) }}
{{- end }}

{{- define "medusa.backendName" -}}
{{- printf "%s-backend" (include "medusa.fullname" .) }}
{{- end }}

{{- define "medusa.storefrontName" -}}
{{- printf "%s-storefront" (include "medusa.fullname" .) }}
{{- end }}

{{/* Host the store is served on; required for CORS origins and the admin's backend URL. */}}
{{- define "medusa.host" -}}
{{- required "ingress.host is required: Medusa's CORS origins and backend URL are https?://<ingress.host>" .Values.ingress.host }}
{{- end }}

{{- define "medusa.url" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) (include "medusa.host" .) }}
{{- end }}

{{/* In-cluster URL of the backend (storefront server side, setup Job). */}}
{{- define "medusa.backendInternalUrl" -}}
{{- printf "http://%s:%v" (include "medusa.backendName" .) .Values.backend.port }}
{{- end }}

{{- define "medusa.image" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{/* Pod security context with a component's uid/gid/fsGroup: (dict "ctx" $ "uid" 999). */}}
{{- define "medusa.podSecurityContext" -}}
{{- $sc := deepCopy .ctx.Values.podSecurityContext }}
{{- $_ := set $sc "runAsUser" .uid }}
{{- $_ := set $sc "runAsGroup" .uid }}
{{- $_ := set $sc "fsGroup" .uid }}
{{- $_ := set $sc "fsGroupChangePolicy" "OnRootMismatch" }}
{{- toYaml $sc }}
{{- end }}

{{- define "medusa.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
Environment of every process running the Medusa application (server, migrations, setup Job):
(dict "ctx" $ "component" "backend"), the component whose memory limit sizes the heap.
Credentials come from the Secret; the URLs are assembled by the kubelet with $(VAR) expansion,
so no password is ever written into the pod spec. Order matters: a variable must be defined
before the one that references it.
*/}}
{{- define "medusa.appEnv" -}}
{{- $resources := include "medusa.resources" . | fromYaml -}}
{{- $heap := include "medusa.heapMiB" $resources.limits.memory -}}
{{- with .ctx -}}
{{- $secret := include "medusa.credentialsSecret" . -}}
- name: NODE_ENV
  value: production
- name: NODE_OPTIONS
  value: {{ printf "--max-old-space-size=%s %s" $heap .Values.backend.nodeOptions | trim | quote }}
- name: PORT
  value: {{ .Values.backend.port | quote }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: database-password
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(DATABASE_PASSWORD)@%s:5432/%s" .Values.postgresql.username (include "medusa.postgresName" .) .Values.postgresql.database | quote }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.redis.passwordKey }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379" (include "medusa.redisName" .) | quote }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: jwt-secret
- name: COOKIE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: cookie-secret
- name: STORE_CORS
  value: {{ include "medusa.url" . | quote }}
- name: ADMIN_CORS
  value: {{ include "medusa.url" . | quote }}
- name: AUTH_CORS
  value: {{ include "medusa.url" . | quote }}
- name: MEDUSA_BACKEND_URL
  value: {{ include "medusa.url" . | quote }}
- name: MEDUSA_WORKER_MODE
  value: shared
- name: DISABLE_MEDUSA_ADMIN
  value: "false"
{{- with .Values.backend.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Requests and limits of a component for the store's plan: (dict "ctx" $ "component" "backend").
A plan resourcesByPlan does not list, or none (a standalone install), takes `small`.
*/}}
{{- define "medusa.resources" -}}
{{- $plans := .ctx.Values.resourcesByPlan | default dict -}}
{{- $plan := .ctx.Values.store.plan | default "small" -}}
{{- if not (hasKey $plans $plan) }}{{ $plan = "small" }}{{ end -}}
{{- $resources := index (index $plans $plan | default dict) .component -}}
{{- if not $resources -}}
{{- fail (printf "resourcesByPlan.%s.%s is missing: give the component requests and limits for that plan" $plan .component) -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end }}

{{/* Node.js heap for a container's memory limit (in Mi or Gi): 75%, leaving room off-heap. */}}
{{- define "medusa.heapMiB" -}}
{{- $limit := toString . -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $limit -}}
{{- $mib = mul (atoi (trimSuffix "Gi" $limit)) 1024 -}}
{{- else if hasSuffix "Mi" $limit -}}
{{- $mib = atoi (trimSuffix "Mi" $limit) -}}
{{- end -}}
{{- if le $mib 0 -}}
{{- fail (printf "memory limit %q of a Node.js container must be a whole number of Mi or Gi" $limit) -}}
{{- end -}}
{{- div (mul $mib 3) 4 -}}
{{- end }}

{{/*
Retired (the platform value `retired`): "true" when the store is retired, "" otherwise. Fails
on anything but a boolean, so a quoted "false" can never stop a running store by accident.
A retired store keeps every object that holds data (its PersistentVolumeClaims, the
StatefulSet's volumeClaimTemplates, the credentials wiring) exactly as rendered when live;
it only runs no pod (every Deployment and StatefulSet at 0 replicas), serves no Ingress and
runs no setup hook (it would wait for a database that is stopped).
*/}}
{{- define "medusa.retired" -}}
{{- $retired := .Values.retired | default false -}}
{{- if not (kindIs "bool" $retired) -}}
{{- fail (printf "retired must be true or false, not %v (%s)" $retired (kindOf $retired)) -}}
{{- end -}}
{{- if $retired }}true{{ end -}}
{{- end }}

{{/* Replicas of every Deployment and StatefulSet: 1, or 0 when the store is retired. */}}
{{- define "medusa.replicas" -}}
{{- if include "medusa.retired" . }}0{{ else }}1{{ end -}}
{{- end }}
