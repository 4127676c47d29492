package fleet

import (
	"context"

	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Explicit ids need their regions before they can be batched, and only ListInstances tells a phone's region
// (BatchQueryStatus, the one call that takes a list of ids, answers with a status only). ListInstances filters by
// one instance_id at a time, so there are two ways to find n phones in a fleet of P pages:
//
//   - look each id up: n calls;
//   - list the fleet: at most P calls, fewer when the ids are found early (the listing stops then).
//
// resolveIDs takes the cheaper one. P is known from the last listing of the whole fleet (fleetSize); before any,
// the first page of the fleet is read (it tells P and may hold some of the ids), and the rest is listed or looked
// up, whichever needs fewer calls. One id is always looked up (one call).

// resolveIDs returns ids (duplicates dropped, order kept) with their regions; an id KooPhone does not list is
// Missing.
func (r *Resolver) resolveIDs(ctx context.Context, ids []string) ([]Phone, error) {
	ids = unique(ids)
	region := make(map[string]string, len(ids))
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	note := func(items []upstream.Instance) {
		for _, in := range items {
			if want[in.InstanceID] {
				region[in.InstanceID] = in.Region
			}
		}
	}
	listed := false // the whole fleet was seen: an id not found does not exist
	if len(ids) > 1 && !r.lookupsCheaper(len(ids)) {
		var err error
		if listed, err = r.listFor(ctx, len(ids), region, note); err != nil {
			return nil, err
		}
	}
	if !listed {
		for _, id := range ids {
			if _, ok := region[id]; ok {
				continue
			}
			res, err := r.up.ListInstances(ctx, upstream.ListInstancesRequest{PageNo: 1, PageSize: r.cfg.PageSize, InstanceID: id})
			if err != nil {
				return nil, err
			}
			for _, in := range res.Result {
				if in.InstanceID == id { // exact: KooPhone does not document whether instance_id matches exactly
					region[id] = in.Region
				}
			}
		}
	}
	out := make([]Phone, len(ids))
	for i, id := range ids {
		reg, ok := region[id]
		out[i] = Phone{ID: id, Region: reg, Missing: !ok}
	}
	return out, nil
}

// listFor reads the fleet's first page, then the rest of the fleet when that costs no more calls than looking up
// the ids still missing; it stops as soon as every id is found (pages are read one after the other, none ahead,
// so no call is wasted). It reports whether the whole fleet was seen.
func (r *Resolver) listFor(ctx context.Context, n int, region map[string]string, note func([]upstream.Instance)) (bool, error) {
	ps := r.cfg.PageSize
	for no := 1; ; no++ {
		req := upstream.ListInstancesRequest{PageNo: no, PageSize: ps}
		res, err := r.up.ListInstances(ctx, req)
		if err != nil {
			return false, err
		}
		r.noteFleetSize(req, res)
		note(res.Result)
		left, pages := n-len(region), pagesOf(res.TotalCount, ps)
		switch {
		case len(res.Result) < ps || no >= pages:
			return true, nil // the last page: the whole fleet was seen
		case left == 0:
			return false, nil // every id found: nothing left to look up
		case no == 1 && pages-1 > left:
			return false, nil // looking the rest up one by one takes fewer calls than the pages left
		}
	}
}

// lookupsCheaper reports whether looking n ids up one by one takes fewer calls than listing the fleet, as far as
// the last listing of the whole fleet tells (false when there was none).
func (r *Resolver) lookupsCheaper(n int) bool {
	size := r.fleetSize.Load()
	return size > 0 && n < pagesOf(int(size), r.cfg.PageSize)
}

// noteFleetSize remembers the fleet's size from an unfiltered listing.
func (r *Resolver) noteFleetSize(req upstream.ListInstancesRequest, res *upstream.InstancePage) {
	if req.InstanceID == "" && req.InstanceName == "" && req.PoolSceneTag == "" && req.PoolName == "" {
		r.fleetSize.Store(int64(res.TotalCount))
	}
}

func pagesOf(total, pageSize int) int { return (total + pageSize - 1) / pageSize }

// unique drops repeated ids, keeping the first of each.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
