package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Selector chooses phones: explicit IDs, or a Filter (exactly one of them).
type Selector struct {
	IDs    []string
	Filter *Filter
}

// Filter matches phones by their ListInstances fields; every criterion set must hold.
type Filter struct {
	All           bool   // no criterion needed
	NamePrefix    string // instance_name starts with this
	PoolSceneTag  string // CLOUD_APP or CLOUD_PHONE (upstream filter)
	PoolName      string // node group (upstream filter)
	RunningStatus *int   // KooPhone's running_status; nil matches any
	AssignUser    string // assign_user equals this
	Region        string // region equals this (e.g. cn-north-7)
}

// match applies the criteria KooPhone cannot apply itself. instance_name upstream is not documented as a prefix
// match, so the prefix is checked here as well; ListInstances documents no region parameter, so the region is
// checked only here.
func (f *Filter) match(in upstream.Instance) bool {
	switch {
	case f.NamePrefix != "" && !strings.HasPrefix(in.InstanceName, f.NamePrefix),
		f.RunningStatus != nil && in.RunningStatus != *f.RunningStatus,
		f.AssignUser != "" && in.AssignUser != f.AssignUser,
		f.Region != "" && in.Region != f.Region:
		return false
	}
	return true
}

// Phone is a selected phone and its region. KooPhone runs a batch only when all its phones are in one region
// (KOOPHONE.API.1002 otherwise), so the engine batches phones by region. An explicit id that KooPhone does not list
// for the tenant is Missing (and has no region): it gets a result of its own and joins no batch.
type Phone struct {
	ID      string
	Region  string
	Missing bool
}

// key identifies the selector inside a cursor, so a cursor is never applied to another selection.
func (s Selector) key() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Lister is the one KooPhone call the resolver makes.
type Lister interface {
	ListInstances(context.Context, upstream.ListInstancesRequest) (*upstream.InstancePage, error)
}

// Cursor is a position in a listing: the next phone is at Index on page Page (from 1) of PageSize phones.
type Cursor struct {
	Page, Index, PageSize int
	selector              string
}

// ErrBadCursor is returned for a cursor that was not made by this resolver for the same selector.
var ErrBadCursor = errors.New("fleet: cursor is malformed or belongs to another selector or page size")

const cursorVersion = "c1"

// String encodes the cursor for a caller to send back.
func (c Cursor) String() string {
	raw := strings.Join([]string{cursorVersion, c.selector, strconv.Itoa(c.PageSize), strconv.Itoa(c.Page), strconv.Itoa(c.Index)}, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseCursor decodes s for sel; "" is the start of the listing.
func parseCursor(s string, sel Selector, pageSize int) (Cursor, error) {
	if s == "" {
		return Cursor{Page: 1, PageSize: pageSize, selector: sel.key()}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 5 || parts[0] != cursorVersion || parts[1] != sel.key() {
		return Cursor{}, ErrBadCursor
	}
	var n [3]int
	for i, p := range parts[2:] {
		if n[i], err = strconv.Atoi(p); err != nil || n[i] < 0 || n[i] > 1<<24 {
			return Cursor{}, ErrBadCursor
		}
	}
	if n[0] != pageSize || n[1] < 1 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{PageSize: n[0], Page: n[1], Index: n[2], selector: parts[1]}, nil
}

// ResolverConfig tunes the listing.
type ResolverConfig struct {
	// PageSize is the ListInstances page size (default 100: the most KooPhone answers per page, so the fewest calls).
	PageSize int
	// Prefetch is how many pages are fetched ahead of the one being consumed (default 2). Pages are fetched one
	// at a time, in order, so the listing never adds more than one concurrent call to the upstream's rate limit.
	Prefetch int
}

// Resolver pages through ListInstances.
type Resolver struct {
	up  Lister
	cfg ResolverConfig
	// fleetSize is the total_count of the last listing of the whole fleet (0: none yet). It tells resolveIDs
	// whether looking ids up one by one costs fewer calls than listing the fleet.
	fleetSize atomic.Int64
}

// NewResolver returns a resolver over up.
func NewResolver(up Lister, cfg ResolverConfig) *Resolver {
	if cfg.PageSize <= 0 || cfg.PageSize > 100 {
		cfg.PageSize = 100
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	return &Resolver{up: up, cfg: cfg}
}

// Walk calls fn with every phone sel matches, in KooPhone's order, starting after cursor ("" from the start), each
// with the cursor that resumes after it. An explicit-id selector also pages through the fleet (KooPhone has no
// "list these ids" call), keeping the phones named; ids KooPhone does not list are not reported. fn's error ends
// the walk and is returned.
func (r *Resolver) Walk(ctx context.Context, sel Selector, cursor string, fn func(upstream.Instance, Cursor) error) error {
	cur, err := parseCursor(cursor, sel, r.cfg.PageSize)
	if err != nil {
		return err
	}
	var want map[string]bool
	if len(sel.IDs) > 0 {
		want = make(map[string]bool, len(sel.IDs))
		for _, id := range sel.IDs {
			want[id] = true
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := r.fetch(ctx, sel, cur.Page)
	for pg := range pages {
		if pg.err != nil {
			return pg.err
		}
		for i, in := range pg.items {
			if pg.no == cur.Page && i < cur.Index {
				continue // already delivered before the cursor
			}
			if want != nil && !want[in.InstanceID] || sel.Filter != nil && !sel.Filter.match(in) {
				continue
			}
			next := Cursor{Page: pg.no, Index: i + 1, PageSize: r.cfg.PageSize, selector: cur.selector}
			if err := fn(in, next); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// Resolve returns the phones sel chooses with their regions: every phone the filter matches, in KooPhone's order,
// or the explicit ids in the caller's order (duplicates dropped), each found with as few ListInstances calls as
// possible (see resolveIDs); an id KooPhone does not list comes back Missing.
func (r *Resolver) Resolve(ctx context.Context, sel Selector) ([]Phone, error) {
	if sel.Filter == nil {
		return r.resolveIDs(ctx, sel.IDs)
	}
	var out []Phone
	err := r.Walk(ctx, sel, "", func(in upstream.Instance, _ Cursor) error {
		out = append(out, Phone{ID: in.InstanceID, Region: in.Region})
		return nil
	})
	return out, err
}

type page struct {
	no    int
	items []upstream.Instance
	err   error
}

// fetch reads pages from first on, in order, up to Prefetch pages ahead of the consumer, and closes the channel
// after the last page, an error, or when ctx ends.
func (r *Resolver) fetch(ctx context.Context, sel Selector, first int) <-chan page {
	out := make(chan page, r.cfg.Prefetch)
	req := upstream.ListInstancesRequest{PageSize: r.cfg.PageSize}
	if f := sel.Filter; f != nil {
		req.InstanceName, req.PoolSceneTag, req.PoolName = f.NamePrefix, f.PoolSceneTag, f.PoolName
	}
	go func() {
		defer close(out)
		for no := first; ; no++ {
			req.PageNo = no
			res, err := r.up.ListInstances(ctx, req)
			pg := page{no: no, err: err}
			if err == nil {
				pg.items = res.Result
				r.noteFleetSize(req, res)
			}
			select {
			case out <- pg:
			case <-ctx.Done():
				return
			}
			// The last page: an error, a short page, or the total reached.
			if err != nil || len(res.Result) < r.cfg.PageSize || no*r.cfg.PageSize >= res.TotalCount {
				return
			}
		}
	}()
	return out
}

// String describes a selector for logs (never more than a handful of ids).
func (s Selector) String() string {
	if s.Filter == nil {
		return fmt.Sprintf("%d ids", len(s.IDs))
	}
	return fmt.Sprintf("filter %+v", *s.Filter)
}
