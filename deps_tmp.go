package main
import (
 _ "github.com/segmentio/kafka-go"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
 _ "go.uber.org/zap"
 _ "github.com/twmb/franz-go/pkg/kfake"
 _ "github.com/alicebob/miniredis/v2"
 _ "gopkg.in/yaml.v3"
 _ "github.com/oklog/run"
 _ "golang.org/x/term"
 _ "golang.org/x/time/rate"
 _ "github.com/cenkalti/backoff/v4"
 _ "github.com/hashicorp/golang-lru/v2"
)
func main(){}
