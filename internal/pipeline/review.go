package pipeline

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/metrics"
)

// handleReview applies editors' decisions: each corrects the latest result of its id, which is
// republished to minsheng.triaged with Revision+1 and ReviewedBy, and to its (possibly new) track
// topic when routed. A decision that is malformed, names an unknown label, or whose id is not
// among the recent results goes to minsheng.dlq.
func (s *Stage) handleReview(batch []kafka.Message) ([]bus.Record, func()) {
	var (
		recs    []bus.Record
		updates = map[string][]byte{}
		order   []string
	)
	for _, m := range batch {
		var d envelope.Decision
		if err := json.Unmarshal(m.Value, &d); err != nil {
			recs = append(recs, s.deadLetter(m, "review", "review value is not a decision: "+err.Error()))
			continue
		}
		if d.ID == "" || d.Editor == "" {
			recs = append(recs, s.deadLetter(m, "review", "decision needs id and editor"))
			continue
		}
		prev, ok := updates[d.ID] // an earlier decision in this batch
		if !ok {
			prev = s.cache.get(d.ID)
		}
		if prev == nil {
			recs = append(recs, s.deadLetter(m, "review", fmt.Sprintf("no recent result for id %s (triage keeps the last %d)", d.ID, s.opts.ResultCache)))
			continue
		}
		var res envelope.Result
		if err := json.Unmarshal(prev, &res); err != nil {
			recs = append(recs, s.deadLetter(m, "review", "cached result unreadable: "+err.Error()))
			continue
		}
		if err := Apply(&res, &d); err != nil {
			recs = append(recs, s.deadLetter(m, "review", err.Error()))
			continue
		}
		val, err := json.Marshal(&res)
		if err != nil {
			recs = append(recs, s.deadLetter(m, "review", "encoding result: "+err.Error()))
			continue
		}
		recs = append(recs, s.resultRecords(&res, val)...)
		if _, seen := updates[d.ID]; !seen {
			order = append(order, d.ID)
		}
		updates[d.ID] = val
	}
	return recs, func() {
		for _, id := range order {
			s.cache.put(id, updates[id])
			s.m.Message("review", metrics.StageReviewed, 1)
		}
	}
}

// Apply corrects res by decision d: set fields override the machine's, Valid overrides validity,
// NotDuplicate detaches the message from its duplicate cluster. It bumps Revision, sets ReviewedBy
// and clears NeedsReview. It refuses unknown types and tracks.
func Apply(res *envelope.Result, d *envelope.Decision) error {
	if res.Error != "" {
		return fmt.Errorf("result %s could not be triaged (%s); nothing to correct", res.ID, res.Error)
	}
	if d.Type != "" && !slices.Contains(envelope.RequestTypes, d.Type) {
		return fmt.Errorf("unknown type %q (one of %s)", d.Type, strings.Join(envelope.RequestTypes, "|"))
	}
	if d.Track != "" && !slices.Contains(envelope.Tracks, d.Track) {
		return fmt.Errorf("unknown track %q (one of %s)", d.Track, strings.Join(envelope.Tracks, "|"))
	}
	var changes []string
	if d.Valid != nil && *d.Valid != res.Valid {
		res.Valid = *d.Valid
		changes = append(changes, fmt.Sprintf("有效=%v", res.Valid))
	}
	if d.Type != "" && d.Type != res.Type {
		res.Type = d.Type
		res.Confidence.Type = 1
		changes = append(changes, "类型="+envelope.TypeNames[d.Type])
	}
	if d.Track != "" && d.Track != res.Track {
		res.Track = d.Track
		res.Confidence.Track = 1
		changes = append(changes, "渠道="+envelope.TrackNames[d.Track])
	}
	if d.Area != "" && d.Area != res.Area {
		res.Area = d.Area
		res.Confidence.Area = 1
		changes = append(changes, "领域="+d.Area)
	}
	if d.NotDuplicate && res.DuplicateOf != "" {
		res.DuplicateOf, res.Similarity, res.CaseID = "", 0, res.ID
		changes = append(changes, "非重复")
	}
	why := fmt.Sprintf("编辑 %s 复核", d.Editor)
	if len(changes) > 0 {
		why += "更正：" + strings.Join(changes, "，")
	} else {
		why += "确认"
	}
	if d.Note != "" {
		why += "（" + d.Note + "）"
	}
	res.Reasons = append(res.Reasons, why)
	res.NeedsReview = false
	res.ReviewedBy = d.Editor
	res.Revision++
	return nil
}
