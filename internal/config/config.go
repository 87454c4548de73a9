// Package config owns minsheng's YAML configuration: the typed structs with their defaults, ${ENV}
// expansion, strict decoding (an unknown key is an error) and validation whose error is one line
// naming the connector, the key and the problem. Connector packages register the decoder of their
// type-specific keys here (RegisterConnectorType); config itself knows no connector. It must not
// touch Kafka, HTTP or the classifier.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultFile is the configuration file serve reads when -config is not given and it exists.
const DefaultFile = "minsheng.yaml"

// Config is the whole configuration of one minsheng process.
type Config struct {
	// Listen is the one HTTP listener for the API, webhooks, console and metrics. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded broker's log, the dedup-index snapshot and spools. Default ./data.
	DataDir string `yaml:"data_dir"`
	// LogLevel is the least severe level logged: debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// Kafka says which cluster to use, or how to run the embedded broker.
	Kafka Kafka `yaml:"kafka"`
	// Triage tunes the triage stage and its engine.
	Triage Triage `yaml:"triage"`
	// Connectors lists the channel connectors; each has a unique name and a type. Default: none
	// (serve then adds the generic HTTP intake connector named "api").
	Connectors []Connector `yaml:"connectors"`
}

// Kafka configures the bus.
type Kafka struct {
	// Brokers are the bootstrap addresses of a real Kafka or Redpanda cluster. Default empty:
	// start the embedded broker.
	Brokers []string `yaml:"brokers"`
	// EmbeddedListen is where the embedded broker listens, and the address it advertises to
	// clients. Default 127.0.0.1:9092.
	EmbeddedListen string `yaml:"embedded_listen"`
	// TopicPrefix is prepended to every topic name. Default "".
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions is the partition count of topics minsheng creates. Default 6.
	Partitions int `yaml:"partitions"`
}

// Triage configures the triage stage.
type Triage struct {
	// ReviewThreshold: a result whose type, track or area confidence is below it needs review. Default 0.6.
	ReviewThreshold float64 `yaml:"review_threshold"`
	// DedupWindow is how far back a message can be a duplicate of another. Default 720h (30 days).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// Model is a model file written by `minsheng train`. Default "": the model built into the binary.
	Model string `yaml:"model"`
	// SnapshotInterval is how often the dedup index is snapshotted to the data directory (it is
	// always snapshotted at shutdown). 0 snapshots only at shutdown. Default 1m.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// ResultCache is how many recent results triage keeps to apply editors' decisions to and to
	// answer redelivered messages with their first result (about 1.5 KB each). Default 50000.
	ResultCache int `yaml:"result_cache"`
}

// ConnectorTypes lists the valid connector types.
var ConnectorTypes = []string{"sms", "mailbox", "board", "newspaper", "wechat", "api"}

// Connector is one configured connector: the generic name and type, and the type-specific keys
// decoded by the type's registered Settings.
type Connector struct {
	// Name is unique; webhook routes live under /connectors/<name>/. Required; lower-case letters,
	// digits, '-' and '_'.
	Name string
	// Type is one of ConnectorTypes. Required.
	Type string
	// Settings holds the type-specific keys, decoded strictly, defaults filled. It is nil when no
	// package has registered the type in this binary; the keys are then kept unchecked in Raw.
	Settings Settings
	// Raw holds the type-specific keys of a type that no package has registered.
	Raw map[string]any
}

// Settings is the type-specific configuration of one connector type. Implementations are structs
// with yaml tags; the value returned by the registered factory carries the defaults.
type Settings interface {
	// Validate checks the decoded keys. Return a *FieldError (see Problem) to name the key.
	Validate() error
}

// FieldError names the key of a connector's settings that is wrong and what is wrong with it.
type FieldError struct {
	Key     string
	Problem string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Problem }

// Problem returns a *FieldError for key.
func Problem(key, format string, args ...any) error {
	return &FieldError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

var (
	registryMu sync.RWMutex
	registry   = map[string]func() Settings{}
)

// RegisterConnectorType makes the type-specific keys of connector type typ decodable: newSettings
// returns a pointer to a struct holding the defaults. Connector packages call it from init. It
// panics on an unknown type or a second registration.
func RegisterConnectorType(typ string, newSettings func() Settings) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if !slices.Contains(ConnectorTypes, typ) {
		panic("config: registering unknown connector type " + typ)
	}
	if _, dup := registry[typ]; dup {
		panic("config: connector type " + typ + " registered twice")
	}
	registry[typ] = newSettings
}

// NewSettings returns the default settings of connector type typ, or nil when typ is not registered.
func NewSettings(typ string) Settings {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if f := registry[typ]; f != nil {
		return f()
	}
	return nil
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:8080",
		DataDir:  "./data",
		LogLevel: "info",
		Kafka: Kafka{
			EmbeddedListen: "127.0.0.1:9092",
			Partitions:     6,
		},
		Triage: Triage{
			ReviewThreshold:  0.6,
			DedupWindow:      720 * time.Hour,
			SnapshotInterval: time.Minute,
			ResultCache:      50000,
		},
	}
}

// Load reads the configuration file at path. With path empty it reads DefaultFile if that exists,
// and otherwise returns Default(). The result is not yet validated.
func Load(path string) (*Config, error) {
	if path == "" {
		if _, err := os.Stat(DefaultFile); err != nil {
			return Default(), nil
		}
		path = DefaultFile
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return Parse(data)
}

// fileConfig is Config as it is decoded: the connectors stay nodes until their type is known.
type fileConfig struct {
	Listen     string      `yaml:"listen"`
	DataDir    string      `yaml:"data_dir"`
	LogLevel   string      `yaml:"log_level"`
	Kafka      Kafka       `yaml:"kafka"`
	Triage     Triage      `yaml:"triage"`
	Connectors []yaml.Node `yaml:"connectors"`
}

// Parse decodes a YAML configuration over Default(): keys not given keep their defaults, unknown
// keys are errors, and ${VAR} in any value is replaced by the environment variable VAR (an unset
// variable is an error). The result is not yet validated.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, oneLine("", err)
	}
	if len(root.Content) == 0 { // empty file
		return Default(), nil
	}
	if err := expandEnv(&root, ""); err != nil {
		return nil, err
	}
	expanded, err := yaml.Marshal(&root)
	if err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	def := Default()
	fc := fileConfig{Listen: def.Listen, DataDir: def.DataDir, LogLevel: def.LogLevel, Kafka: def.Kafka, Triage: def.Triage}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return nil, oneLine("", err)
	}
	cfg := &Config{Listen: fc.Listen, DataDir: fc.DataDir, LogLevel: fc.LogLevel, Kafka: fc.Kafka, Triage: fc.Triage}
	for i := range fc.Connectors {
		c, err := decodeConnector(i, &fc.Connectors[i])
		if err != nil {
			return nil, err
		}
		cfg.Connectors = append(cfg.Connectors, c)
	}
	return cfg, nil
}

func decodeConnector(i int, n *yaml.Node) (Connector, error) {
	where := fmt.Sprintf("connectors[%d]", i)
	if n.Kind != yaml.MappingNode {
		return Connector{}, fmt.Errorf("config: %s: must be a mapping with name and type", where)
	}
	var c Connector
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		switch k.Value {
		case "name":
			c.Name = v.Value
		case "type":
			c.Type = v.Value
		default:
			rest.Content = append(rest.Content, k, v)
		}
	}
	if c.Name != "" {
		where = "connectors[" + c.Name + "]"
	}
	if c.Type == "" {
		return c, fmt.Errorf("config: %s.type: missing required key (one of %s)", where, strings.Join(ConnectorTypes, "|"))
	}
	if !slices.Contains(ConnectorTypes, c.Type) {
		return c, fmt.Errorf("config: %s.type: unknown type %q (one of %s)", where, c.Type, strings.Join(ConnectorTypes, "|"))
	}
	body, err := yaml.Marshal(rest)
	if err != nil {
		return c, fmt.Errorf("config: %s: %v", where, err)
	}
	c.Settings = NewSettings(c.Type)
	if c.Settings == nil {
		if err := yaml.Unmarshal(body, &c.Raw); err != nil {
			return c, oneLine(where+".", err)
		}
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(c.Settings); err != nil && !errors.Is(err, io.EOF) {
		return c, oneLine(where+".", err)
	}
	return c, nil
}

var (
	reUnknown = regexp.MustCompile(`^line \d+: field (\S+) not found in type (.+)$`)
	reLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	// sections maps the Go types of nested sections to their key path.
	sections = map[string]string{"config.fileConfig": "", "config.Kafka": "kafka.", "config.Triage": "triage."}
)

// oneLine turns a yaml error (which may span lines) into one line. prefix is the key path of the
// node decoded ("" for the file, "connectors[x]." for a connector).
func oneLine(prefix string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if err.Error() == "EOF" {
			return nil
		}
		return fmt.Errorf("config: %s%s", prefix, strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", " "))
	}
	var parts []string
	for _, e := range te.Errors {
		if m := reUnknown.FindStringSubmatch(e); m != nil {
			p, ok := sections[m[2]]
			if !ok {
				p = prefix
			}
			parts = append(parts, p+m[1]+": unknown key")
			continue
		}
		if m := reLine.FindStringSubmatch(e); m != nil && prefix == "" {
			parts = append(parts, "line "+m[1]+": bad value: "+m[2])
			continue
		} else if m != nil {
			parts = append(parts, strings.TrimSuffix(prefix, ".")+": bad value: "+m[2])
			continue
		}
		parts = append(parts, prefix+e)
	}
	return errors.New("config: " + strings.Join(parts, "; "))
}

var (
	reEnv           = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	reConnectorItem = regexp.MustCompile(`^connectors\[\d+\]$`)
)

// expandEnv replaces ${VAR} in every scalar value below n. path names n for errors.
func expandEnv(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expandEnv(c, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		name := ""
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" {
				name = n.Content[j+1].Value
			}
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			p := n.Content[j].Value
			if path != "" {
				p = path + "." + p
			}
			if name != "" && reConnectorItem.MatchString(path) {
				p = "connectors[" + name + "]." + n.Content[j].Value
			}
			if err := expandEnv(n.Content[j+1], p); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expandEnv(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing []string
		out := reEnv.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := os.LookupEnv(name)
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("config: %s: environment variable %s is not set", path, strings.Join(missing, ", "))
		}
		if out != n.Value {
			n.Value = out
			if n.Style == 0 {
				// A plain scalar: let the expanded text resolve as if written in the file
				// (so partitions: ${P} is a number); quoted scalars stay strings.
				n.Tag = ""
			}
		}
	}
	return nil
}

// Validate checks every value and returns nil or one error, on one line, naming the key (and the
// connector) and the problem, e.g. "config: connectors[wx-main].token: missing required key".
func (c *Config) Validate() error {
	var probs []string
	add := func(key, format string, args ...any) {
		probs = append(probs, key+": "+fmt.Sprintf(format, args...))
	}
	checkAddr := func(key, v string) {
		if v == "" {
			add(key, "missing required key")
			return
		}
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			add(key, "bad value %q: want host:port", v)
		}
	}
	checkAddr("listen", c.Listen)
	if c.DataDir == "" {
		add("data_dir", "missing required key")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		add("log_level", "bad value %q: want debug, info, warn or error", c.LogLevel)
	}
	for i, b := range c.Kafka.Brokers {
		checkAddr(fmt.Sprintf("kafka.brokers[%d]", i), b)
	}
	if len(c.Kafka.Brokers) == 0 {
		checkAddr("kafka.embedded_listen", c.Kafka.EmbeddedListen)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]*$`).MatchString(c.Kafka.TopicPrefix) {
		add("kafka.topic_prefix", "bad value %q: only letters, digits, '.', '_' and '-'", c.Kafka.TopicPrefix)
	}
	if c.Kafka.Partitions < 1 {
		add("kafka.partitions", "bad value %d: must be at least 1", c.Kafka.Partitions)
	}
	if c.Triage.ReviewThreshold < 0 || c.Triage.ReviewThreshold > 1 {
		add("triage.review_threshold", "bad value %v: must be between 0 and 1", c.Triage.ReviewThreshold)
	}
	if c.Triage.DedupWindow <= 0 {
		add("triage.dedup_window", "bad value %v: must be positive", c.Triage.DedupWindow)
	}
	if c.Triage.SnapshotInterval < 0 {
		add("triage.snapshot_interval", "bad value %v: must not be negative", c.Triage.SnapshotInterval)
	}
	if c.Triage.ResultCache < 0 {
		add("triage.result_cache", "bad value %d: must not be negative", c.Triage.ResultCache)
	}
	seen := map[string]bool{}
	reName := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	for i, cn := range c.Connectors {
		where := fmt.Sprintf("connectors[%d]", i)
		if cn.Name != "" {
			where = "connectors[" + cn.Name + "]"
		}
		switch {
		case cn.Name == "":
			add(where+".name", "missing required key")
		case !reName.MatchString(cn.Name):
			add(where+".name", "bad value %q: lower-case letters, digits, '-' and '_' only", cn.Name)
		case seen[cn.Name]:
			add(where+".name", "duplicate name")
		}
		seen[cn.Name] = true
		if !slices.Contains(ConnectorTypes, cn.Type) {
			add(where+".type", "unknown type %q (one of %s)", cn.Type, strings.Join(ConnectorTypes, "|"))
			continue
		}
		if cn.Settings != nil {
			if err := cn.Settings.Validate(); err != nil {
				var fe *FieldError
				if errors.As(err, &fe) {
					add(where+"."+fe.Key, "%s", fe.Problem)
				} else {
					add(where, "%v", err)
				}
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return errors.New("config: " + strings.Join(probs, "; "))
}

// Secret is a configuration value that must never be logged: it formats, logs and marshals as
// "[redacted]". Use Reveal to get the value.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret in %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText redacts the secret in JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML redacts the secret when a configuration is printed.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue redacts the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
