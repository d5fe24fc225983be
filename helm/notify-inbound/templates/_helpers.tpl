{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "notify-inbound.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of this release's objects, as NotifyBC's chart makes its own.
*/}}
{{- define "notify-inbound.fullname" -}}
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

{{- define "notify-inbound.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "notify-inbound.labels" -}}
helm.sh/chart: {{ include "notify-inbound.chart" . }}
{{ include "notify-inbound.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: notify-bc
{{- end }}

{{- define "notify-inbound.selectorLabels" -}}
app.kubernetes.io/name: {{ include "notify-inbound.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Service name of NotifyBC's API: NotifyBC's chart names it with its "NotifyBC.fullname"
(release name + "-notify-bc", or the release name alone when it contains "notify-bc").
*/}}
{{- define "notify-inbound.notifybcService" -}}
{{- $n := .Values.notifyBC }}
{{- if $n.fullnameOverride }}
{{- $n.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "notify-bc" $n.nameOverride }}
{{- $release := required "notifyBC.release: the release name of NotifyBC's chart" $n.release }}
{{- if contains $name $release }}
{{- $release | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $release $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
internal_http_host: notifyBC.url, else NotifyBC's Service and port.
*/}}
{{- define "notify-inbound.notifybcUrl" -}}
{{- if .Values.notifyBC.url }}
{{- .Values.notifyBC.url | trimSuffix "/" }}
{{- else }}
{{- printf "http://%s:%d" (include "notify-inbound.notifybcService" .) (int .Values.notifyBC.servicePort) }}
{{- end }}
{{- end }}

{{/*
Bitnami's name for the Redis of NotifyBC's release ("common.names.fullname" of the redis
subchart): release + "-redis", or the release alone when it contains "redis".
*/}}
{{- define "notify-inbound.redisFullname" -}}
{{- $release := .Values.notifyBC.release }}
{{- if contains "redis" $release }}
{{- $release | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-redis" $release | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "notify-inbound.redisUrl" -}}
{{- default (printf "redis://%s-master:6379/0" (include "notify-inbound.redisFullname" .)) .Values.coordination.redisUrl }}
{{- end }}

{{- define "notify-inbound.redisSecret" -}}
{{- default (include "notify-inbound.redisFullname" .) .Values.coordination.password.existingSecret }}
{{- end }}

{{/*
Whether any listener speaks TLS (then a certificate Secret is required).
*/}}
{{- define "notify-inbound.wantsTls" -}}
{{- range .Values.listeners }}{{ if ne (toString .tls) "none" }}true{{ end }}{{ end }}
{{- end }}

{{- define "notify-inbound.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int .Values.limits.drain_delay_secs) (int .Values.limits.shutdown_grace_secs) 5 }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{- define "notify-inbound.routeEnabled" -}}
{{- if and .Values.route.enabled (.Capabilities.APIVersions.Has "route.openshift.io/v1/Route") }}true{{ end }}
{{- end }}

{{- define "notify-inbound.hostname" -}}
{{- $first := (splitList "," (required "inboundSmtpServer.domain: the domain of the un-/bn- addresses (NotifyBC's email.inboundSmtpServer.domain)" .Values.inboundSmtpServer.domain) | first | trim) }}
{{- default (default $first .Values.route.host) .Values.inboundSmtpServer.hostname }}
{{- end }}
