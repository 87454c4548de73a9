package classifier

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"embed"
	"encoding/gob"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
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

	// vocab maps feature hashes to rows: of Features and the tasks' W while training, of packed
	// once pack has laid the weights out.
	vocab rowTable
	idf   idfTable // token dedup hash → IDF
	// packed holds every task's weights of a row side by side (row*width + offset[task] + class),
	// so scoring a message touches one cache line per feature instead of one per task.
	packed []float32
	offset [numTasks + 1]int
	stride int // offset[numTasks] weights, then the feature's IDF
}

// pack lays the tasks' weights out row by row, one 64-byte cache line per feature.
//
// Each task's weights of a row are centred on their mean over the task's classes. That adds the
// same amount to every class score of the task, which softmax ignores, and it makes the last
// class's weight minus the sum of the others, so it is not stored: the four tasks' 2+5+4+7
// weights take 1+4+3+6 = 14 floats, the feature's IDF a 15th, and the row is padded to 16.
// A centred weight also reads directly as "for this class over the others" (keywords).
func (m *Model) pack() {
	w := 0
	for t, l := range m.Tasks {
		m.offset[t] = w
		w += l.K() - 1
	}
	m.offset[numTasks] = w
	m.stride = (w + 1 + 15) &^ 15
	// Rows run from the commonest feature to the rarest: the features most messages share sit
	// together and stay in the cache, which gse's dictionary walks keep flushing.
	order := make([]int, len(m.Features))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(m.FeatureIDF[a], m.FeatureIDF[b]) })
	keys := make([]uint64, len(order))
	m.packed = make([]float32, len(m.Features)*m.stride)
	for p, r := range order {
		keys[p] = m.Features[r]
		row := m.packed[p*m.stride : (p+1)*m.stride]
		for t, l := range m.Tasks {
			k := l.K()
			src := l.W[r*k : r*k+k]
			var mean float64
			for _, w := range src {
				mean += float64(w)
			}
			mean /= float64(k)
			for c, w := range src[:k-1] {
				row[m.offset[t]+c] = float32(float64(w) - mean)
			}
		}
		row[w] = m.FeatureIDF[r]
	}
	m.vocab = newRowTable(keys)
}

// weight is the centred weight of packed row r for class c of task t.
func (m *Model) weight(r int32, t Task, c int) float32 {
	row := m.packed[int(r)*m.stride+m.offset[t] : int(r)*m.stride+m.offset[t+1]]
	if c < len(row) {
		return row[c]
	}
	var sum float32 // the last class: minus the others
	for _, w := range row {
		sum += w
	}
	return -sum
}

// scores computes every task's calibrated probabilities for x in one pass over its features;
// out[t] gets task t's probabilities.
func (m *Model) scores(x sparse, out *[numTasks][]float64) {
	w, stride := m.offset[numTasks], m.stride
	var buf [16]float32
	acc := buf[:]
	if w > len(buf) {
		acc = make([]float32, w)
	}
	for i, r := range x.rows {
		row := m.packed[int(r)*stride : int(r)*stride+w]
		v := x.vals[i]
		for c := range row {
			acc[c] += row[c] * v
		}
	}
	for t, l := range m.Tasks {
		k := l.K()
		p := make([]float64, k)
		var last float64
		for c := 0; c < k-1; c++ {
			a := float64(acc[m.offset[t]+c])
			p[c] = a + float64(l.B[c])
			last -= a
		}
		p[k-1] = last + float64(l.B[k-1])
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
	if w, ok := m.idf.get(h &^ placeBit); ok {
		return w
	}
	return m.DefaultIDF
}
