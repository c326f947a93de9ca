package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS is how replywatch reaches a server over TLS. The server's
// certificate is checked against the system roots, or ca_file's; a client
// certificate is sent when cert_file and key_file are set.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the authorities that sign the servers'
	// certificates (the system roots when empty).
	CAFile   string `yaml:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ServerName is the name checked in the server's certificate, when it
	// is not the host dialled.
	ServerName string `yaml:"server_name,omitempty"`
	// InsecureSkipVerify accepts any server certificate: for tests only,
	// it leaves the connection open to anyone in the middle.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// SASL mechanisms of kafka.sasl.mechanism.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// SASL is how replywatch authenticates to the Kafka brokers; none when
// Mechanism is empty.
type SASL struct {
	Mechanism string `yaml:"mechanism,omitempty"`
	Username  string `yaml:"username,omitempty"`
	// Password is the text, or "${VAR}" to read it from the environment;
	// PasswordFile a file holding it (a mounted secret).
	Password     Secret `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
}

// Config builds the client TLS configuration, reading the files it names;
// nil when TLS is off.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading cert_file and key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (t TLS) validate(p *problems, path string) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			p.add(path, "settings given but enabled is false")
		}
		return
	}
	// The files are read by CheckSecrets, where replywatch runs.
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add(path, "cert_file and key_file go together")
	}
}

func (s SASL) validate(p *problems, path string) {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			p.add(path+".mechanism", "is required with a username or password (%s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		return
	}
	oneOf(p, path+".mechanism", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	if s.Username == "" {
		p.add(path+".username", "is required with a mechanism")
	}
	oneSecret(p, path, "password", s.Password, s.PasswordFile)
}

// validateTransport checks kafka.tls, kafka.sasl, redis.tls and the Redis
// credentials.
func (c *Config) validateTransport(p *problems) {
	c.Kafka.TLS.validate(p, "kafka.tls")
	c.Kafka.SASL.validate(p, "kafka.sasl")
	c.Redis.TLS.validate(p, "redis.tls")
	if c.Redis.Password != "" && c.Redis.PasswordFile != "" {
		p.add("redis", "set password or password_file, not both")
	}
	if c.Redis.Username != "" && c.Redis.Password == "" && c.Redis.PasswordFile == "" {
		p.add("redis.username", "needs password or password_file")
	}
}

// RedisCredentials resolves the Redis ACL user and password set apart
// from the URL (empty when not set: the URL's are used).
func (c *Config) RedisCredentials(getenv func(string) string) (user, password string, err error) {
	if c.Redis.Password == "" && c.Redis.PasswordFile == "" {
		return c.Redis.Username, "", nil
	}
	password, err = c.Redis.Password.Resolve(c.Redis.PasswordFile, getenv)
	if err != nil {
		return "", "", fmt.Errorf("redis.password: %w", err)
	}
	return c.Redis.Username, password, nil
}

// KafkaPassword resolves the SASL password.
func (c *Config) KafkaPassword(getenv func(string) string) (string, error) {
	v, err := c.Kafka.SASL.Password.Resolve(c.Kafka.SASL.PasswordFile, getenv)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.password: %w", err)
	}
	return v, nil
}

// checkTransportSecrets resolves the Kafka and Redis passwords, so that a
// missing file or variable is reported before connecting.
func (c *Config) checkTransportSecrets(p *problems, getenv func(string) string) {
	if c.Kafka.SASL.Mechanism != "" {
		if _, err := c.KafkaPassword(getenv); err != nil {
			p.add("", "%v", err)
		}
	}
	if _, _, err := c.RedisCredentials(getenv); err != nil {
		p.add("", "%v", err)
	}
	for _, t := range []struct {
		path string
		tls  TLS
	}{{"kafka.tls", c.Kafka.TLS}, {"redis.tls", c.Redis.TLS}} {
		if _, err := t.tls.Config(); err != nil {
			p.add(t.path, "%v", err)
		}
	}
}

// maskTransport hides the literal Kafka and Redis passwords of a copy of
// the configuration about to be printed.
func (c *Config) maskTransport() {
	c.Kafka.SASL.Password = c.Kafka.SASL.Password.Masked()
	c.Redis.Password = c.Redis.Password.Masked()
}
