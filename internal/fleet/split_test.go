package fleet

import (
	"slices"
	"strconv"
	"testing"
)

// checkSplit holds split's promises for phones cut into batches of at most size: no batch above size or
// KooPhone's 100, one region per batch, every phone found exactly once (a missing one in no batch), each region's
// phones in their order, the fewest batches per region, indexes 0.. in order, and each batch's key.
func checkSplit(t *testing.T, phones []Phone, size int) {
	t.Helper()
	batches, missing := split(phones, size, "req")
	seen := map[string]int{}
	perRegion := map[string][]string{}
	batchesOf := map[string]int{}
	for i, b := range batches {
		if b.Index != i || b.Key != batchKey("req", i) {
			t.Fatalf("batch %d: index %d key %q", i, b.Index, b.Key)
		}
		if len(b.IDs) == 0 || len(b.IDs) > size || len(b.IDs) > MaxBatch {
			t.Fatalf("batch %d holds %d phones (size %d)", i, len(b.IDs), size)
		}
		batchesOf[b.Region]++
		for _, id := range b.IDs {
			seen[id]++
			perRegion[b.Region] = append(perRegion[b.Region], id)
		}
	}
	region := map[string]string{}
	want := map[string][]string{}
	var wantMissing []string
	for _, p := range phones {
		if p.Missing {
			wantMissing = append(wantMissing, p.ID)
			if seen[p.ID] != 0 {
				t.Fatalf("missing phone %s is in a batch", p.ID)
			}
			continue
		}
		region[p.ID] = p.Region
		want[p.Region] = append(want[p.Region], p.ID)
		if seen[p.ID] != 1 {
			t.Fatalf("phone %s is in %d batches", p.ID, seen[p.ID])
		}
	}
	for _, b := range batches {
		for _, id := range b.IDs {
			if region[id] != b.Region {
				t.Fatalf("batch %d of region %q holds %s of region %q", b.Index, b.Region, id, region[id])
			}
		}
	}
	for reg, ids := range want {
		if !slices.Equal(perRegion[reg], ids) {
			t.Fatalf("region %q: batched %v, selected %v", reg, perRegion[reg], ids)
		}
		if n := (len(ids) + size - 1) / size; batchesOf[reg] != n {
			t.Fatalf("region %q: %d batches for %d phones of at most %d, want %d", reg, batchesOf[reg], len(ids), size, n)
		}
	}
	if !slices.Equal(missing, wantMissing) {
		t.Fatalf("missing %v, want %v", missing, wantMissing)
	}
}

func TestSplitByRegion(t *testing.T) {
	var phones []Phone
	// 250 phones over three regions, interleaved as a listing might give them, and two unknown ids.
	for i := range 250 {
		phones = append(phones, Phone{ID: "p" + strconv.Itoa(i), Region: []string{"cn-north-7", "cn-north-208", "cn-southwest-252"}[i%3]})
	}
	phones = append(phones, Phone{ID: "gone1", Missing: true}, Phone{ID: "gone2", Missing: true})
	for _, size := range []int{1, 7, 50, 83, 84, 100} {
		checkSplit(t, phones, size)
	}
	batches, missing := split(phones, 100, "")
	// 84, 83 and 83 phones: one batch each, in the order the regions first came.
	if len(batches) != 3 || batches[0].Region != "cn-north-7" || batches[1].Region != "cn-north-208" ||
		batches[2].Region != "cn-southwest-252" || len(batches[0].IDs) != 84 || batches[0].Key != "" {
		t.Fatalf("%d batches: %+v", len(batches), batches[0])
	}
	if !slices.Equal(missing, []string{"gone1", "gone2"}) {
		t.Fatalf("missing %v", missing)
	}
	if b, m := split(nil, 100, "req"); len(b) != 0 || len(m) != 0 {
		t.Fatalf("nothing selected: %v %v", b, m)
	}
}

// FuzzSplit: any selection, any batch size, any mix of regions: split keeps its promises (checkSplit).
//
//	go test -run '^$' -fuzz FuzzSplit -fuzztime 30s ./internal/fleet/
func FuzzSplit(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 2, 255}, uint8(1))
	f.Add([]byte{3, 3, 3, 3}, uint8(100))
	f.Add(make([]byte, 450), uint8(100))
	f.Fuzz(func(t *testing.T, layout []byte, size uint8) {
		// One phone per byte: its low bits choose one of five regions ("" included), 255 an unknown id.
		phones := make([]Phone, len(layout))
		for i, b := range layout {
			phones[i] = Phone{ID: "p" + strconv.Itoa(i), Region: []string{"", "a", "b", "c", "d"}[b%5], Missing: b == 255}
			if phones[i].Missing {
				phones[i].Region = ""
			}
		}
		checkSplit(t, phones, int(size)%MaxBatch+1)
	})
}
