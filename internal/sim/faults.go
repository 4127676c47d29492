package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Fault kinds.
const (
	FaultLatency   = "latency"   // delay the answer by Latency (on the sim clock), then answer normally
	FaultError     = "error"     // HTTP 500 KOOPHONE.API.9999
	Fault429       = "429"       // HTTP 429 APIGW.0308 with Retry-After
	Fault502       = "502"       // HTTP 502 with a proxy's HTML page
	Fault503       = "503"       // HTTP 503 with a proxy's HTML page
	FaultMalformed = "malformed" // HTTP 200 whose body is not JSON
	FaultTruncated = "truncated" // HTTP 200 with the first half of the real answer
	FaultDrop      = "drop"      // the connection closes without an answer
	// FaultDone503 carries the operation out, then answers HTTP 503 with a proxy's HTML page: KooPhone did the
	// work and its answer was lost on the way back (a proxy timing out on a slow backend does this).
	FaultDone503 = "done-503"
)

var faultKinds = []string{FaultLatency, FaultError, Fault429, Fault502, Fault503, FaultMalformed, FaultTruncated, FaultDrop, FaultDone503}

// Fault is an injected failure. Ops limits it to some operations (seed names; empty means every KooPhone
// operation; the IAM endpoint only when "IAM" is listed). Count > 0 makes it hit the next Count matching requests
// and then expire; otherwise Rate is the probability that it hits a request (drawn from the seeded generator),
// and a fault with neither Count nor Rate hits every matching request. Faults apply after the request is counted
// and before authentication. Latency faults add up and let the request go on; of the others, the first that hits
// answers.
type Fault struct {
	Kind       string
	Ops        []string
	Count      int
	Rate       float64
	Latency    time.Duration // FaultLatency: the delay
	RetryAfter time.Duration // Fault429: the Retry-After header, in whole seconds (at least 1)
}

// faultJSON is the wire form of a Fault: durations as Go duration strings ("250ms").
type faultJSON struct {
	Kind       string   `json:"kind"`
	Ops        []string `json:"ops,omitempty"`
	Count      int      `json:"count,omitempty"`
	Rate       float64  `json:"rate,omitempty"`
	Latency    string   `json:"latency,omitempty"`
	RetryAfter string   `json:"retry_after,omitempty"`
}

// MarshalJSON writes durations as strings like "250ms".
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Kind: f.Kind, Ops: f.Ops, Count: f.Count, Rate: f.Rate}
	if f.Latency != 0 {
		j.Latency = f.Latency.String()
	}
	if f.RetryAfter != 0 {
		j.RetryAfter = f.RetryAfter.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form MarshalJSON writes; unknown members are an error.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*f = Fault{Kind: j.Kind, Ops: j.Ops, Count: j.Count, Rate: j.Rate}
	var err error
	if j.Latency != "" {
		if f.Latency, err = time.ParseDuration(j.Latency); err != nil {
			return fmt.Errorf("latency: %v", err)
		}
	}
	if j.RetryAfter != "" {
		if f.RetryAfter, err = time.ParseDuration(j.RetryAfter); err != nil {
			return fmt.Errorf("retry_after: %v", err)
		}
	}
	return nil
}

// Validate reports a fault the simulator cannot apply.
func (f Fault) Validate() error {
	if !slices.Contains(faultKinds, f.Kind) {
		return fmt.Errorf("fault kind %q: want one of %v", f.Kind, faultKinds)
	}
	for _, op := range f.Ops {
		if op != OpIAM && !slices.Contains(OperationNames(), op) {
			return fmt.Errorf("fault op %q: not an operation", op)
		}
	}
	switch {
	case f.Count < 0:
		return fmt.Errorf("fault count %d: negative", f.Count)
	case f.Rate < 0 || f.Rate > 1 || math.IsNaN(f.Rate):
		return fmt.Errorf("fault rate %v: want 0..1", f.Rate)
	case f.Kind == FaultLatency && f.Latency <= 0:
		return fmt.Errorf("latency fault needs a positive latency")
	case f.Latency < 0 || f.RetryAfter < 0:
		return fmt.Errorf("fault durations must not be negative")
	}
	return nil
}

func (f *Fault) matches(op string) bool {
	if len(f.Ops) == 0 {
		return op != OpIAM
	}
	return slices.Contains(f.Ops, op)
}

// faultSet holds the active faults; it has its own lock and generator so faults never wait on the state lock.
type faultSet struct {
	mu   sync.Mutex
	rng  *rand.Rand
	list []*activeFault
}

// activeFault is a Fault in use; counted remembers that it had a Count, so it expires when the count runs out.
type activeFault struct {
	Fault
	counted bool
}

func (fs *faultSet) init(seed int64) {
	fs.rng = rand.New(rand.NewPCG(uint64(seed)^0xfa17, uint64(seed))) //nolint:gosec // G404: seeded, so a run repeats
}

func activate(f Fault) *activeFault {
	f.Ops = slices.Clone(f.Ops)
	return &activeFault{Fault: f, counted: f.Count > 0}
}

func (fs *faultSet) set(faults []Fault) error {
	list := make([]*activeFault, len(faults))
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			return err
		}
		list[i] = activate(f)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = list
	return nil
}

func (fs *faultSet) add(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = append(fs.list, activate(f))
	return nil
}

func (fs *faultSet) snapshot() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, len(fs.list))
	for i, f := range fs.list {
		out[i] = f.Fault
		out[i].Ops = slices.Clone(f.Ops)
	}
	return out
}

// pick decides which faults hit a request of op: the total latency, and the first other fault that hits.
func (fs *faultSet) pick(op string) (latency time.Duration, hit *Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	kept := fs.list[:0]
	for _, f := range fs.list {
		if f.matches(op) && (f.Kind == FaultLatency || hit == nil) {
			fires := false
			switch {
			case f.counted:
				fires = true
				f.Count--
			case f.Rate > 0:
				fires = fs.rng.Float64() < f.Rate
			default:
				fires = true
			}
			if fires && f.Kind == FaultLatency {
				latency += f.Latency
			} else if fires {
				c := f.Fault
				hit = &c
			}
		}
		if f.counted && f.Count == 0 {
			continue // used up
		}
		kept = append(kept, f)
	}
	clear(fs.list[len(kept):])
	fs.list = kept
	return latency, hit
}

// apply runs the faults of a request. It returns the fault the pipeline must still carry out (truncation, the 503
// after the work) and whether the request goes on; false means the fault answered, or the client left during a
// delay.
func (fs *faultSet) apply(s *Server, w http.ResponseWriter, r *http.Request, op string) (*Fault, bool) {
	latency, f := fs.pick(op)
	if latency > 0 && !clock.Sleep(s.clock, latency, r.Context().Done()) {
		return nil, false
	}
	if f == nil {
		return nil, true
	}
	switch f.Kind {
	case FaultError:
		if op == OpIAM {
			writeIAMError(w, http.StatusInternalServerError, "Internal Server Error", "An unexpected error occurred.")
			break
		}
		msg := codes[codeInternal].msg
		env := envelope{ErrorCode: codeInternal, ErrorMsg: &msg}
		if op == "SyncCommand" {
			env = envelope{ErrorCode: codeInternal, ErrorInfo: &msg}
		}
		writeJSON(w, http.StatusInternalServerError, env)
	case Fault429:
		secs := max(1, int(math.Ceil(f.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, envelope{ErrorCode: codeAPIGWThrottled,
			ErrorMsg: ptr("The throttling threshold has been reached")})
	case Fault502:
		writeHTML(w, http.StatusBadGateway, "502 Bad Gateway")
	case Fault503:
		writeHTML(w, http.StatusServiceUnavailable, "503 Service Temporarily Unavailable")
	case FaultMalformed:
		// A proxy's page under a JSON content type: the client must not trust the header.
		body := "<!DOCTYPE html><html><body><p>Session expired, please log in again.</p></body></html>"
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	case FaultDrop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler) // no hijacking (HTTP/2): abort the stream instead
		}
		_ = conn.Close()
	case FaultTruncated, FaultDone503:
		return f, true
	}
	return nil, false
}

func writeHTML(w http.ResponseWriter, status int, title string) {
	body := "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
