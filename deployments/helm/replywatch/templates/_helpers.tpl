{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "replywatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: release-chart, or the release name alone when it already contains
the chart name. The Prometheus rules match job=~".*replywatch.*", and the
ServiceMonitor's job is this name, so keep "replywatch" in it.
*/}}
{{- define "replywatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "replywatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replywatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "replywatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "replywatch.labels" -}}
helm.sh/chart: {{ include "replywatch.chart" . }}
{{ include "replywatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: processor
app.kubernetes.io/part-of: replywatch
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "replywatch.testLabels" -}}
helm.sh/chart: {{ include "replywatch.chart" . }}
app.kubernetes.io/name: {{ include "replywatch.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: replywatch
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "replywatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "replywatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "replywatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The config file: .Values.config with the keys the chart owns set from the
values (they win over the same keys under config).
*/}}
{{- define "replywatch.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $kafka := deepCopy (get $cfg "kafka" | default dict) -}}
{{- $_ := set $kafka "brokers" .Values.kafka.brokers -}}
{{- $_ := set $kafka "group_id" .Values.kafka.groupId -}}
{{- $_ := set $kafka "topics" .Values.kafka.topics -}}
{{- $_ := set $kafka "buyers_partitions" .Values.kafka.partitions -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $redis := deepCopy (get $cfg "redis" | default dict) -}}
{{- $_ := set $redis "url" .Values.redis.url -}}
{{- $_ := set $cfg "redis" $redis -}}
{{- $_ := set $cfg "http" (dict "addr" ":8080") -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
Checks values that the schema cannot relate to each other. Every template
that depends on them includes it, so "helm template" fails early.
*/}}
{{- define "replywatch.validate" -}}
{{- $partitions := int .Values.kafka.partitions -}}
{{- if .Values.keda.enabled -}}
{{- if gt (int .Values.keda.maxReplicaCount) $partitions -}}
{{- fail (printf "keda.maxReplicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count own no partition and sit idle; raise kafka.partitions only after adding partitions to the topics" (int .Values.keda.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) -}}
{{- fail (printf "keda.minReplicaCount (%d) exceeds keda.maxReplicaCount (%d)" (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) -}}
{{- end -}}
{{- else if gt (int .Values.replicaCount) $partitions -}}
{{- fail (printf "replicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count own no partition and sit idle" (int .Values.replicaCount) $partitions) -}}
{{- end -}}
{{- end -}}

{{/*
GOMEMLIMIT: goMemLimitPercent of resources.limits.memory, in MiB (Go's
syntax), rounded down; empty without a memory limit. Kubernetes quantities
with a binary or decimal suffix, or plain bytes.
*/}}
{{- define "replywatch.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if $limit -}}
{{- $q := toString $limit -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "resources.limits.memory %q is not a memory quantity such as 512Mi or 1Gi" $q) -}}
{{- end -}}
{{- $bytes := mulf (float64 $num) (get $units $unit) -}}
{{- printf "%dMiB" (int64 (floor (divf (mulf $bytes .Values.goMemLimitPercent) 104857600))) -}}
{{- end -}}
{{- end -}}
