package classifier

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/longbridgeapp/opencc"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// inputLine is one line of `minsheng classify` input: at least id and body; a full envelope is
// accepted too.
type inputLine struct {
	envelope.Envelope
	Body *string `json:"body"`
}

// ParseInputLine decodes one classify input line into an envelope, with a precise error for
// anything that cannot be triaged.
func ParseInputLine(line []byte) (*envelope.Envelope, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, errors.New("空行 / empty line")
	}
	if len(line) > MaxInputBytes {
		return nil, ErrTooLarge
	}
	if !utf8.Valid(line) {
		return nil, ErrInvalidUTF8
	}
	var in inputLine
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("JSON 格式错误 / malformed JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("JSON 格式错误 / malformed JSON: more than one value on the line")
	}
	env := in.Envelope
	if env.ID == "" {
		return &env, errors.New("缺少 id / id is required")
	}
	if in.Body == nil {
		return &env, errors.New("缺少 body / body is required")
	}
	env.Body = *in.Body
	return &env, nil
}

// ClassifyStream triages JSON lines from r in order, as one stream (a later line can be a
// duplicate of an earlier one), writing one result line per input line to w. Lines longer than
// limit, malformed or otherwise unreadable lines get an error result; the stream goes on.
func ClassifyStream(e *Engine, r io.Reader, w io.Writer, limit int) error {
	br := bufio.NewReaderSize(r, 1<<16)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		line, tooLong, err := readLine(br, limit)
		if len(line) == 0 && !tooLong && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading input: %w", err)
		}
		var res envelope.Result
		if tooLong {
			res = errorResult("", ErrTooLarge)
		} else if env, perr := ParseInputLine(line); perr != nil {
			id := ""
			if env != nil {
				id = env.ID
			}
			res = errorResult(id, perr)
		} else {
			res = e.Triage(env)
		}
		if werr := enc.Encode(&res); werr != nil {
			return fmt.Errorf("writing result: %w", werr)
		}
		if err == io.EOF {
			return nil
		}
	}
}

func errorResult(id string, err error) envelope.Result {
	return envelope.Result{ID: id, CaseID: id, Error: err.Error(), Keywords: []string{}, Reasons: []string{}, TriagedAt: time.Now().UTC()}
}

// readLine reads one line; past limit bytes it discards the rest of the line and reports
// tooLong.
func readLine(br *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, e := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case e == bufio.ErrBufferFull:
			continue
		case e != nil:
			return line, tooLong, e
		}
		return line, tooLong, nil
	}
}

// ToTraditional converts labelled messages to Traditional Chinese (OpenCC s2t), for measuring
// how the engine does on Traditional input.
func ToTraditional(data []Labelled) ([]Labelled, error) {
	cc, err := opencc.New("s2t")
	if err != nil {
		return nil, err
	}
	out := make([]Labelled, len(data))
	for i, l := range data {
		if l.Title, err = cc.Convert(l.Title); err != nil {
			return nil, err
		}
		if l.Body, err = cc.Convert(l.Body); err != nil {
			return nil, err
		}
		l.ID += "-hant"
		out[i] = l
	}
	return out, nil
}
