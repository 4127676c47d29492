package coord

import (
	"strconv"
	"testing"
)

// Snapshots come from Redis, which any replica (or anyone with access) writes: parsing must never panic, and
// whatever it accepts must round-trip.
func FuzzParseMsg(f *testing.F) {
	for _, s := range []string{"1|n|abc", "17649|t|", "x|n|a", "1|q|a", "", "|", "1||", "-5|t|\x00|\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ver, s, ok := parseMsg(raw)
		if !ok {
			return
		}
		flag := "n"
		if s.Terminal {
			flag = "t"
		}
		if again, s2, ok2 := parseMsg(formatInt(ver) + "|" + flag + "|" + string(s.Data)); !ok2 || again != ver || string(s2.Data) != string(s.Data) || s2.Terminal != s.Terminal {
			t.Fatalf("%q did not round-trip", raw)
		}
	})
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }
