{{/* Names: <release>-pacsflow, or the release name when it already says pacsflow. */}}
{{- define "pacsflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pacsflow.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object; call with (dict "root" $ "component" "web"). */}}
{{- define "pacsflow.labels" -}}
{{ include "pacsflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "pacsflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "pacsflow.secretName" -}}
{{ .Values.secrets.existingSecret | default (include "pacsflow.fullname" .) }}
{{- end -}}

{{- define "pacsflow.celery" -}}
{{- if eq .Values.airflow.executor "CeleryExecutor" }}true{{ end -}}
{{- end -}}

{{- define "pacsflow.webUrl" -}}
http://{{ include "pacsflow.fullname" . }}-web:8000
{{- end -}}

{{- define "pacsflow.airflowUrl" -}}
http://{{ include "pacsflow.fullname" . }}-airflow-api-server:8080
{{- end -}}

{{- define "pacsflow.searchUrl" -}}
{{- if .Values.opensearch.enabled -}}
http://{{ include "pacsflow.fullname" . }}-opensearch:9200
{{- else -}}
{{ .Values.search.url }}
{{- end -}}
{{- end -}}

{{- define "pacsflow.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "pacsflow.secretName" .root }}
      key: {{ .key }}
{{- end -}}

{{/* The environment of every pacsflow and Airflow container (and KubernetesExecutor task
pod): the PACSFLOW_* settings from which the image's entrypoint derives Airflow's. */}}
{{- define "pacsflow.env" -}}
- name: PACSFLOW_WEB_URL
  value: {{ include "pacsflow.webUrl" . }}
- name: PACSFLOW_AIRFLOW_URL
  value: {{ include "pacsflow.airflowUrl" . }}
{{- if .Values.ingress.enabled }}
- name: PACSFLOW_PUBLIC_URL
  value: {{ printf "%s://%s" (ternary "https" "http" (ne .Values.ingress.tlsSecret "")) .Values.ingress.host | quote }}
{{- end }}
- name: PACSFLOW_AE_TITLE
  value: {{ .Values.settings.aeTitle | quote }}
- name: PACSFLOW_SERIES_QUIET_SECONDS
  value: {{ .Values.settings.seriesQuietSeconds | quote }}
- name: PACSFLOW_MAX_OBJECT_SIZE
  value: {{ .Values.settings.maxObjectSize | quote }}
- name: PACSFLOW_LOG_LEVEL
  value: {{ .Values.settings.logLevel | quote }}
- name: PACSFLOW_AIRFLOW_EXECUTOR
  value: {{ ternary "celery" "kubernetes" (eq .Values.airflow.executor "CeleryExecutor") }}
- name: PACSFLOW_AIRFLOW_PARALLELISM
  value: {{ .Values.airflow.parallelism | quote }}
- name: AIRFLOW__API__BASE_URL
  value: {{ include "pacsflow.airflowBaseUrl" . }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "PACSFLOW_DATABASE_URL" "key" "database-url") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "PACSFLOW_AIRFLOW_DATABASE_URL" "key" "airflow-database-url") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "PACSFLOW_ADMIN_PASSWORD" "key" "admin-password") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "PACSFLOW_SECRET_KEY" "key" "secret-key") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "AIRFLOW__CORE__FERNET_KEY" "key" "airflow-fernet-key") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "AIRFLOW__API__SECRET_KEY" "key" "airflow-secret-key") }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "AIRFLOW__API_AUTH__JWT_SECRET" "key" "airflow-jwt-secret") }}
{{- if .Values.airflow.logs.persistence.enabled }}
- name: AIRFLOW__LOGGING__BASE_LOG_FOLDER
  value: /srv/pacsflow/airflow-logs
{{- end }}
{{- if include "pacsflow.celery" . }}
{{ include "pacsflow.secretEnv" (dict "root" . "name" "PACSFLOW_CELERY_BROKER_URL" "key" "celery-broker-url") }}
{{- else }}
- name: AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE
  value: {{ .Release.Namespace }}
- name: AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE
  value: /etc/pacsflow/pod-template/pod-template.yaml
{{- end }}
{{- if .Values.storage.s3.url }}
- name: PACSFLOW_STORAGE_URL
  value: {{ .Values.storage.s3.url | quote }}
{{- with .Values.storage.s3.endpointUrl }}
- name: PACSFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.region }}
- name: PACSFLOW_S3_REGION
  value: {{ . | quote }}
{{- end }}
{{- else }}
- name: PACSFLOW_STORAGE_PATH
  value: /srv/pacsflow/archive
{{- end }}
{{- with include "pacsflow.searchUrl" . }}
- name: PACSFLOW_SEARCH_URL
  value: {{ . | quote }}
{{- end }}
{{- if not $.Values.opensearch.enabled }}
{{- with .Values.search.username }}
- name: PACSFLOW_SEARCH_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- with .Values.search.passwordSecret }}
- name: PACSFLOW_SEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: password
{{- end }}
{{- if .Values.search.caSecret }}
- name: PACSFLOW_SEARCH_CA_CERTS
  value: /etc/pacsflow/search-ca/ca.crt
{{- end }}
- name: PACSFLOW_SEARCH_VERIFY_CERTS
  value: {{ .Values.search.verifyCerts | quote }}
{{- end }}
{{- with .Values.settings.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "pacsflow.airflowBaseUrl" -}}
{{- if .Values.airflow.baseUrl -}}
{{ .Values.airflow.baseUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.airflowHost -}}
{{ ternary "https" "http" (ne .Values.ingress.tlsSecret "") }}://{{ .Values.ingress.airflowHost }}
{{- else -}}
{{ include "pacsflow.airflowUrl" . }}
{{- end -}}
{{- end -}}

{{/* Volumes of a pod of the pacsflow image (called with its dict): only the web app, the
receiver, the dispatcher and the migrations ("archive": true) mount the archive's files. */}}
{{- define "pacsflow.volumeMounts" -}}
{{- $root := .root -}}
- name: home
  mountPath: /var/lib/pacsflow
- name: tmp
  mountPath: /tmp
# The airflow service account's password, which every process must agree on, where
# Settings.persistent_secret reads it (Airflow's keys come as AIRFLOW__* variables).
- name: secrets
  mountPath: /var/lib/pacsflow/service_password
  subPath: service-password
  readOnly: true
{{- if and .archive (not $root.Values.storage.s3.url) }}
- name: archive
  mountPath: /srv/pacsflow/archive
{{- end }}
{{- if $root.Values.airflow.logs.persistence.enabled }}
- name: logs
  mountPath: /srv/pacsflow/airflow-logs
{{- end }}
{{- if not (include "pacsflow.celery" $root) }}
- name: pod-template
  mountPath: /etc/pacsflow/pod-template
  readOnly: true
{{- end }}
{{- if and (not $root.Values.opensearch.enabled) $root.Values.search.caSecret }}
- name: search-ca
  mountPath: /etc/pacsflow/search-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "pacsflow.volumes" -}}
{{- $root := .root -}}
- name: home  # $PACSFLOW_HOME: staging, Airflow's home; kept across container restarts
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: secrets
  secret:
    secretName: {{ include "pacsflow.secretName" $root }}
{{- if and .archive (not $root.Values.storage.s3.url) }}
- name: archive
  persistentVolumeClaim:
    claimName: {{ $root.Values.storage.files.existingClaim | default (printf "%s-archive" (include "pacsflow.fullname" $root)) }}
{{- end }}
{{- if $root.Values.airflow.logs.persistence.enabled }}
- name: logs
  persistentVolumeClaim:
    claimName: {{ $root.Values.airflow.logs.persistence.existingClaim | default (printf "%s-airflow-logs" (include "pacsflow.fullname" $root)) }}
{{- end }}
{{- if not (include "pacsflow.celery" $root) }}
- name: pod-template
  configMap:
    name: {{ include "pacsflow.fullname" $root }}-pod-template
{{- end }}
{{- if and (not $root.Values.opensearch.enabled) $root.Values.search.caSecret }}
- name: search-ca
  secret:
    secretName: {{ $root.Values.search.caSecret }}
{{- end }}
{{- end -}}

{{- define "pacsflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "pacsflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* A pod of the pacsflow image; call with (dict "root" $ "component" "web" "args" (list ...)
and optionally "archive", "env", "envFrom", "ports", "probes" (container fields as YAML),
"resources", "initMigrations", "serviceAccount", "automountToken", "restartPolicy"). */}}
{{- define "pacsflow.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ .serviceAccount | default (include "pacsflow.fullname" $root) }}
automountServiceAccountToken: {{ .automountToken | default false }}
securityContext:
  {{- include "pacsflow.podSecurityContext" $root | nindent 2 }}
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
{{- if .initMigrations }}
initContainers:
  - name: wait-for-airflow-migrations
    image: {{ include "pacsflow.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: ["airflow", "db", "check-migrations", "--migration-wait-timeout", "600"]
    env:
      {{- include "pacsflow.env" $root | nindent 6 }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    volumeMounts:
      {{- include "pacsflow.volumeMounts" . | nindent 6 }}
    securityContext:
      {{- include "pacsflow.containerSecurityContext" $root | nindent 6 }}
{{- end }}
containers:
  - name: {{ .container | default .component }}
    image: {{ include "pacsflow.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: {{ toJson .args }}
    env:
      {{- include "pacsflow.env" $root | nindent 6 }}
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .envFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .probes }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    volumeMounts:
      {{- include "pacsflow.volumeMounts" . | nindent 6 }}
    securityContext:
      {{- include "pacsflow.containerSecurityContext" $root | nindent 6 }}
volumes:
  {{- include "pacsflow.volumes" . | nindent 2 }}
{{- end -}}

{{/* The S3 credentials as environment, when a Secret holds them. */}}
{{- define "pacsflow.envFrom" -}}
{{- with .Values.storage.s3.credentialsSecret -}}
- secretRef:
    name: {{ . }}
{{- end -}}
{{- end -}}

{{/* A Deployment of the pacsflow image; same arguments as pacsflow.podSpec, plus "replicas". */}}
{{- define "pacsflow.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "pacsflow.fullname" .root }}-{{ .component }}
  labels:
    {{- include "pacsflow.labels" . | nindent 4 }}
spec:
  replicas: {{ .replicas | default 1 }}
  selector:
    matchLabels:
      {{- include "pacsflow.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "pacsflow.selectorLabels" . | nindent 8 }}
    spec:
      {{- include "pacsflow.podSpec" . | trim | nindent 6 }}
{{- end -}}
