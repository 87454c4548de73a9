package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Admin inspects and prepares the cluster: reachability, topic creation, partition offsets.
// It keeps its own connections (not kafka-go's process-wide pool) and retries a request that failed
// on a dead pooled connection, as after a broker restart. It is safe for concurrent use.
type Admin struct {
	c *kafka.Client
	t *kafka.Transport
}

// NewAdmin returns an Admin for the cluster reachable at brokers. Close it when done.
func NewAdmin(brokers []string) *Admin {
	t := &kafka.Transport{IdleTimeout: 30 * time.Second, MetadataTTL: 5 * time.Second}
	return &Admin{c: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: t}, t: t}
}

// Close releases the Admin's connections.
func (a *Admin) Close() { a.t.CloseIdleConnections() }

// again runs fn up to three times while it fails and ctx lives: a request on a pooled connection
// to a broker that restarted fails once before the pool redials.
func again(ctx context.Context, fn func() error) error {
	var err error
	for range 3 {
		if err = fn(); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// TopicSpec describes one topic to ensure.
type TopicSpec struct {
	Name       string
	Partitions int
	Compacted  bool // cleanup.policy=compact
}

// Specs returns the specs of every minsheng topic: partitions each, minsheng.state compacted.
func (t Topics) Specs(tracks []string, partitions int) []TopicSpec {
	var specs []TopicSpec
	for _, name := range t.All(tracks) {
		specs = append(specs, TopicSpec{Name: name, Partitions: partitions, Compacted: name == t.State})
	}
	return specs
}

// Ping asks the cluster for its metadata and reports whether it answered.
func (a *Admin) Ping(ctx context.Context) error {
	if err := again(ctx, func() error {
		_, err := a.c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
		return err
	}); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// EnsureTopics creates the topics in specs that do not exist and checks that all of them exist
// afterwards. It returns one error naming every topic that is missing and why.
func (a *Admin) EnsureTopics(ctx context.Context, specs []TopicSpec) error {
	existing, err := a.existing(ctx, specs)
	if err != nil {
		return err
	}
	var create []kafka.TopicConfig
	for _, s := range specs {
		if existing[s.Name] {
			continue
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: -1}
		if s.Compacted {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		create = append(create, tc)
	}
	var problems []string
	if len(create) > 0 {
		resp, err := a.c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
		if err != nil {
			return fmt.Errorf("%w: creating topics: %v", ErrUnavailable, err)
		}
		for name, terr := range resp.Errors {
			if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
				problems = append(problems, fmt.Sprintf("%s: %v", name, terr))
			}
		}
	}
	if len(problems) == 0 {
		// Creation is asynchronous on a real cluster: wait for the metadata to show every topic.
		for {
			existing, err = a.existing(ctx, specs)
			if err != nil {
				return err
			}
			missing := 0
			for _, s := range specs {
				if !existing[s.Name] {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				for _, s := range specs {
					if !existing[s.Name] {
						problems = append(problems, s.Name+": not visible in metadata after creation")
					}
				}
				return fmt.Errorf("topics missing: %s", strings.Join(problems, "; "))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	sort.Strings(problems)
	return fmt.Errorf("topics missing and could not be created: %s", strings.Join(problems, "; "))
}

func (a *Admin) existing(ctx context.Context, specs []TopicSpec) (map[string]bool, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	var md *kafka.MetadataResponse
	err := again(ctx, func() (err error) {
		md, err = a.c.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: reading metadata: %v", ErrUnavailable, err)
	}
	out := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			out[t.Name] = true
		}
	}
	return out, nil
}

// Partitions returns the partition ids of topic, in order.
func (a *Admin) Partitions(ctx context.Context, topic string) ([]int, error) {
	var md *kafka.MetadataResponse
	err := again(ctx, func() (err error) {
		md, err = a.c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: reading metadata of %s: %v", ErrUnavailable, topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", topic, t.Error)
		}
		ps := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ps = append(ps, p.ID)
		}
		sort.Ints(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("topic %s does not exist", topic)
}

// Offsets returns, per partition of topic, the first offset still held and the end offset (the
// offset the next record will get).
func (a *Admin) Offsets(ctx context.Context, topic string) (first, end map[int]int64, err error) {
	parts, err := a.Partitions(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	err = again(ctx, func() error {
		resp, err := a.c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return fmt.Errorf("%w: listing offsets of %s: %v", ErrUnavailable, topic, err)
		}
		first, end = map[int]int64{}, map[int]int64{}
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				// kafka-go reports a failed connection of one partition's request as Unknown.
				return fmt.Errorf("%w: listing offsets of %s/%d: %v", ErrUnavailable, topic, po.Partition, po.Error)
			}
			first[po.Partition] = po.FirstOffset
			end[po.Partition] = po.LastOffset
		}
		return nil
	})
	return first, end, err
}

// GroupLag returns, per partition of topic, how many records group has not yet committed.
func (a *Admin) GroupLag(ctx context.Context, group, topic string) (map[int]int64, error) {
	var committed map[int]int64
	err := again(ctx, func() (err error) {
		committed, err = a.c.ConsumerOffsets(ctx, kafka.TopicAndGroup{Topic: topic, GroupId: group})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: reading offsets of group %s: %v", ErrUnavailable, group, err)
	}
	first, end, err := a.Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	lag := map[int]int64{}
	for p, e := range end {
		c, ok := committed[p]
		if !ok || c < 0 {
			c = first[p]
		}
		lag[p] = max(e-c, 0)
	}
	return lag, nil
}
