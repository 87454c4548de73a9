package classifier

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/gob"
	"fmt"
	"io"
	"math"
	"os"
)

// Task indexes the four classifiers of a model.
type Task int

// The tasks a model holds, in file order.
const (
	TaskValidity Task = iota
	TaskType
	TaskTrack
	TaskArea
	numTasks
)

var taskNames = [numTasks]string{"validity", "type", "track", "area"}

func (t Task) String() string { return taskNames[t] }

// Model is a trained set of linear classifiers over hashed features, plus the token document
// frequencies de-duplication weighs with. It is read-only after loading.
type Model struct {
	// Version names the model: "minsheng-<date>-<hash of the training data>".
	Version string
	// Tasks holds one softmax classifier per Task.
	Tasks [numTasks]*Linear
	// InvalidThreshold: a message is invalid when P(invalid) is at least this.
	InvalidThreshold float64
	// Features is the vocabulary (feature hashes, sorted) and FeatureIDF their weights.
	Features   []uint64
	FeatureIDF []float32
	// IDFKeys and IDFVals are the token IDF table de-duplication weighs with.
	IDFKeys []uint32
	IDFVals []float32
	// DefaultIDF is the weight of a token never seen in training.
	DefaultIDF float32
	// TrainedOn counts the training examples.
	TrainedOn int

	vocab rowTable // feature hash → row
	idf   rowTable // token dedup hash → index in IDFVals
	// packed holds every task's weights of a row side by side (row*width + offset[task] + class),
	// so scoring a message touches one cache line per feature instead of one per task.
	packed []float32
	offset [numTasks + 1]int
	stride int // offset[numTasks] weights, then the feature's IDF
}

// pack lays the tasks' weights out row by row.
func (m *Model) pack() {
	w := 0
	for t, l := range m.Tasks {
		m.offset[t] = w
		w += l.K()
	}
	m.offset[numTasks] = w
	m.stride = w + 1
	m.packed = make([]float32, len(m.Features)*m.stride)
	for t, l := range m.Tasks {
		k := l.K()
		for r := range m.Features {
			copy(m.packed[r*m.stride+m.offset[t]:r*m.stride+m.offset[t]+k], l.W[r*k:r*k+k])
		}
	}
	for r, idf := range m.FeatureIDF {
		m.packed[r*m.stride+w] = idf
	}
}

// scores computes every task's calibrated probabilities for x in one pass over its features;
// out[t] gets task t's probabilities.
func (m *Model) scores(x sparse, out *[numTasks][]float64) {
	w, stride := m.offset[numTasks], m.stride
	acc := make([]float32, w)
	for i, r := range x.rows {
		row := m.packed[int(r)*stride : int(r)*stride+w]
		v := x.vals[i]
		for c := range row {
			acc[c] += row[c] * v
		}
	}
	for t, l := range m.Tasks {
		p := make([]float64, l.K())
		for c := range p {
			p[c] = float64(acc[m.offset[t]+c]) + float64(l.B[c])
		}
		softmax(p, l.Temp)
		out[t] = p
	}
}

// Linear is a multinomial logistic regression: P(k|x) = softmax((W·x + B) / Temp).
type Linear struct {
	Labels []string
	// W is row-major: W[row*K+k].
	W    []float32
	B    []float32
	Temp float64
}

// K is the number of classes.
func (l *Linear) K() int { return len(l.Labels) }

// scores writes the calibrated class probabilities of x into p (len K).
func (l *Linear) probs(x sparse, p []float64) {
	k := l.K()
	for c := 0; c < k; c++ {
		p[c] = float64(l.B[c])
	}
	for i, r := range x.rows {
		w := l.W[int(r)*k : int(r)*k+k]
		v := x.vals[i]
		for c := 0; c < k; c++ {
			p[c] += float64(w[c] * v)
		}
	}
	softmax(p, l.Temp)
}

func softmax(p []float64, temp float64) {
	if temp <= 0 {
		temp = 1
	}
	m := math.Inf(-1)
	for _, v := range p {
		m = math.Max(m, v)
	}
	var s float64
	for i, v := range p {
		p[i] = math.Exp((v - m) / temp)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
}

//go:embed model
var modelFS embed.FS

// BuiltinModelPath is where `minsheng train` writes the model that is built into the binary.
const BuiltinModelPath = "classifier/model/minsheng.model.gz"

// LoadModel reads a model file; an empty path loads the model built into the binary.
func LoadModel(path string) (*Model, error) {
	var r io.Reader
	if path == "" {
		b, err := modelFS.ReadFile("model/minsheng.model.gz")
		if err != nil {
			return nil, fmt.Errorf("no model built into this binary: run minsheng train")
		}
		r = bytes.NewReader(b)
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening model: %w", err)
		}
		defer f.Close()
		r = f
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading model: %w", err)
	}
	var m Model
	if err := gob.NewDecoder(zr).Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding model: %w", err)
	}
	if err := m.index(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Model) index() error {
	m.indexVocab()
	for t, l := range m.Tasks {
		if l == nil || len(l.W) != len(m.Features)*l.K() || len(l.B) != l.K() {
			return fmt.Errorf("model: %s classifier is missing or malformed", Task(t))
		}
	}
	if len(m.FeatureIDF) != len(m.Features) || len(m.IDFVals) != len(m.IDFKeys) {
		return fmt.Errorf("model: vocabulary is malformed")
	}
	m.pack()
	return nil
}

// Save writes the model, gzip-compressed.
func (m *Model) Save(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(zw).Encode(m); err != nil {
		return fmt.Errorf("encoding model: %w", err)
	}
	return zw.Close()
}

// IDF returns the inverse document frequency of a token's dedup hash.
func (m *Model) IDF(h uint32) float32 {
	if i := m.idf.get(uint64(h &^ placeBit)); i >= 0 {
		return m.IDFVals[i]
	}
	return m.DefaultIDF
}
