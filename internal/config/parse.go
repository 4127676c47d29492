package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The setters of the settings table. Each parses one value and checks its range, so every single-value rule
// lives here, next to its setting's row; Config.check holds only the rules that span settings. A value that
// cannot work is refused (KOOPHONE_MAX_RECV_BYTES=0 fails every call), and the error names the rule.

type setter = func(string) error

func str(p *string) setter { return func(v string) error { *p = v; return nil } }

// oneOf accepts only the given values.
func oneOf(p *string, values ...string) setter {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("must be %s", quoted(values))
		}
		*p = v
		return nil
	}
}

func quoted(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func boolean(p *bool) setter {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		*p = b
		return err
	}
}

// list splits a comma-separated value, dropping empty items.
func list(p *[]string) setter {
	return func(v string) error {
		*p = nil
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
		return nil
	}
}

// dur accepts any duration that is not negative; atLeast and posDur raise the floor.
func dur(p *time.Duration) setter { return atLeast(p, 0) }

func posDur(p *time.Duration) setter {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		*p = d
		return err
	}
}

func atLeast(p *time.Duration, floor time.Duration) setter {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
		case floor == 0 && d < 0:
			err = errors.New("must not be negative")
		case d < floor:
			err = fmt.Errorf("must be at least %s", durString(floor))
		}
		*p = d
		return err
	}
}

// durWithin accepts lo..hi.
func durWithin(p *time.Duration, lo, hi time.Duration) setter {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && (d < lo || d > hi) {
			err = fmt.Errorf("must be between %s and %s", durString(lo), durString(hi))
		}
		*p = d
		return err
	}
}

// num accepts any integer that is not negative; positive and within narrow it.
func num(p *int) setter { return within(p, 0, maxInt, "must not be negative") }

func positive(p *int) setter { return within(p, 1, maxInt, "must be at least 1") }

const maxInt = int(^uint(0) >> 1)

// within accepts lo..hi; why, when given, is the error (else "must be between lo and hi").
func within(p *int, lo, hi int, why ...string) setter {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && (n < lo || n > hi) {
			err = fmt.Errorf("must be between %d and %d", lo, hi)
			if len(why) > 0 {
				err = errors.New(why[0])
			}
		}
		*p = n
		return err
	}
}

// uint32Within is within for a uint32 setting.
func uint32Within(p *uint32, lo, hi int, why ...string) setter {
	return func(v string) error {
		n := 0
		err := within(&n, lo, hi, why...)(v)
		*p = uint32(n)
		return err
	}
}

func positive64(p *int64) setter {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n <= 0 {
			err = errors.New("must be positive")
		}
		*p = n
		return err
	}
}

func float(p *float64, lo, hi float64) setter {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err == nil && (f < lo || f > hi || f != f) {
			err = fmt.Errorf("must be between %g and %g", lo, hi)
		}
		*p = f
		return err
	}
}

// floatString writes a default number the way people write it: "0.2", "3".
func floatString(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// durString writes a default duration the way people write it: "1m", not "1m0s".
func durString(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
