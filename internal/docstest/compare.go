package docstest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// How an output shown on a page is compared with what the command printed (see Compare):
//
//   - Text lines must be equal (surrounding spaces aside); a UUID shown matches any UUID.
//   - JSON must have the shape shown: an object has exactly the keys shown, unless it contains an elision ("…" or
//     "..." in place of a member), then at least those; an array has exactly the elements shown unless one is an
//     elision; JSON cut off where the page stops showing it ends there. Numbers, booleans, null and strings must
//     be equal, except: a UUID shown matches any UUID, a string with an ellipsis matches any string with the parts
//     shown around it, and an id elided to its first hex digits ("c7e8…") matches any id.
//   - Headers after an HTTP status line: each header shown must be there with that value (same rules as strings).
//   - grpcurl's numbered error details ("1)\t{") are read as the JSON they are.

// segment is one unit of an output: a text line or a JSON value.
type segment struct {
	text   string
	json   any
	isJSON bool
}

// elision stands for "more here" in an object or array shown on a page.
type elision struct{}

// openObject is an object that had an elision or was cut off: it need not list every key.
type openObject map[string]any

// openArray is an array that had an elision or was cut off: it may have more elements.
type openArray []any

var (
	uuidRe      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	uuidInText  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	detailRe    = regexp.MustCompile(`^\s*\d+\)\t`)
	detailCont  = regexp.MustCompile(`^\s*\t`)
	hexPrefixRe = regexp.MustCompile(`^[0-9a-f]{2,}$`)
)

// Compare reports how got (what a command printed) differs from want (the output a page shows), or "" if it has
// the shape shown.
func Compare(want, got string) string {
	wantHead, wantBody := splitHTTP(want)
	gotHead, gotBody := splitHTTP(got)
	if wantHead != nil {
		if gotHead == nil {
			return "the page shows an HTTP status line and headers; the command printed none"
		}
		if d := compareHeaders(wantHead, gotHead); d != "" {
			return d
		}
	}
	ws, err := segments(wantBody, true)
	if err != nil {
		return "the page's output does not parse: " + err.Error()
	}
	gs, err := segments(gotBody, false)
	if err != nil {
		return "the command's output does not parse: " + err.Error()
	}
	for i, w := range ws {
		if i >= len(gs) {
			return fmt.Sprintf("the page shows %d parts, the command printed %d; missing: %s", len(ws), len(gs), show(w))
		}
		if d := compareSegment(w, gs[i]); d != "" {
			return fmt.Sprintf("part %d: %s", i+1, d)
		}
	}
	if len(gs) > len(ws) {
		return fmt.Sprintf("the command printed %d parts, the page shows %d; first one more: %s", len(gs), len(ws), show(gs[len(ws)]))
	}
	return ""
}

func show(s segment) string {
	if s.isJSON {
		return fmt.Sprintf("%v", s.json)
	}
	return strconv.Quote(s.text)
}

// splitHTTP separates a curl -i answer's status line and headers from its body.
func splitHTTP(out string) (head []string, body string) {
	if !strings.HasPrefix(out, "HTTP/") {
		return nil, out
	}
	out = strings.ReplaceAll(out, "\r\n", "\n")
	h, b, _ := strings.Cut(out, "\n\n")
	return strings.Split(h, "\n"), b
}

func compareHeaders(want, got []string) string {
	if strings.TrimSpace(want[0]) != strings.TrimSpace(got[0]) {
		return fmt.Sprintf("status line %q, the page shows %q", got[0], want[0])
	}
	have := map[string]string{}
	for _, l := range got[1:] {
		k, v, _ := strings.Cut(l, ":")
		have[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	for _, l := range want[1:] {
		k, v, _ := strings.Cut(l, ":")
		g, ok := have[strings.ToLower(strings.TrimSpace(k))]
		if !ok {
			return fmt.Sprintf("no header %s (the page shows %q)", k, l)
		}
		if d := compareString(strings.TrimSpace(v), g); d != "" {
			return "header " + k + ": " + d
		}
	}
	return ""
}

// segments cuts an output into text lines and JSON values. lenient: the page's elisions and cut-off JSON allowed.
func segments(out string, lenient bool) ([]segment, error) {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		// grpcurl prints error details as "  1)\t{" and "    \t  ..." lines around plain JSON.
		l = detailRe.ReplaceAllString(l, "")
		l = detailCont.ReplaceAllString(l, "")
		lines = append(lines, l)
	}
	text := strings.Join(lines, "\n")
	var out2 []segment
	p := &parser{s: text, lenient: lenient}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return out2, nil
		}
		if c := p.s[p.i]; c == '{' || c == '[' {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out2 = append(out2, segment{json: v, isJSON: true})
			continue
		}
		end := strings.IndexByte(p.s[p.i:], '\n')
		if end < 0 {
			end = len(p.s) - p.i
		}
		out2 = append(out2, segment{text: strings.TrimSpace(p.s[p.i : p.i+end])})
		p.i += end
	}
}

func compareSegment(w, g segment) string {
	if w.isJSON != g.isJSON {
		return fmt.Sprintf("got %s, the page shows %s", show(g), show(w))
	}
	if !w.isJSON {
		if uuidInText.ReplaceAllString(w.text, "<uuid>") != uuidInText.ReplaceAllString(g.text, "<uuid>") {
			return fmt.Sprintf("got line %q, the page shows %q", g.text, w.text)
		}
		return ""
	}
	return compareJSON("", w.json, g.json)
}

func compareJSON(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := asObject(got)
		if !ok {
			return fmt.Sprintf("%s: got %v, the page shows an object", path, got)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("%s: key %q is not on the page (show it, or elide with …)", path, k)
			}
		}
		return compareMembers(path, w, g)
	case openObject:
		g, ok := asObject(got)
		if !ok {
			return fmt.Sprintf("%s: got %v, the page shows an object", path, got)
		}
		return compareMembers(path, w, g)
	case []any:
		g, ok := asArray(got)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %v, the page shows %d elements", path, got, len(w))
		}
		return compareElements(path, w, g)
	case openArray:
		g, ok := asArray(got)
		if !ok || len(g) < len(w) {
			return fmt.Sprintf("%s: got %v, the page shows at least %d elements", path, got, len(w))
		}
		return compareElements(path, w, g)
	case string:
		g, ok := got.(string)
		if !ok {
			return fmt.Sprintf("%s: got %v, the page shows a string", path, got)
		}
		if d := compareString(w, g); d != "" {
			return path + ": " + d
		}
		return ""
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return fmt.Sprintf("%s: got %v, the page shows %v", path, got, want)
		}
		return ""
	}
}

func asObject(v any) (map[string]any, bool) {
	switch o := v.(type) {
	case map[string]any:
		return o, true
	case openObject:
		return o, true
	}
	return nil, false
}

func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case openArray:
		return a, true
	}
	return nil, false
}

func compareMembers(path string, want, got map[string]any) string {
	for k, wv := range want {
		gv, ok := got[k]
		if !ok {
			return fmt.Sprintf("%s: no key %q", path, k)
		}
		if d := compareJSON(path+"."+k, wv, gv); d != "" {
			return d
		}
	}
	return ""
}

func compareElements(path string, want, got []any) string {
	for i, wv := range want {
		if d := compareJSON(fmt.Sprintf("%s[%d]", path, i), wv, got[i]); d != "" {
			return d
		}
	}
	return ""
}

// compareString applies the string rules: UUIDs, ellipses, elided ids, else equality.
func compareString(want, got string) string {
	if uuidRe.MatchString(want) {
		if uuidRe.MatchString(got) {
			return ""
		}
		return fmt.Sprintf("got %q, the page shows a UUID", got)
	}
	norm := strings.ReplaceAll(want, "...", "…")
	if !strings.Contains(norm, "…") {
		if want != got {
			return fmt.Sprintf("got %q, the page shows %q", got, want)
		}
		return ""
	}
	parts := strings.Split(norm, "…")
	if hexPrefixRe.MatchString(parts[0]) && len(parts) == 2 && parts[1] == "" {
		return "" // an elided id
	}
	rest := got
	for i, part := range parts {
		at := strings.Index(rest, part)
		if at < 0 || i == 0 && at != 0 {
			return fmt.Sprintf("got %q, the page shows %q", got, want)
		}
		rest = rest[at+len(part):]
	}
	if last := parts[len(parts)-1]; last != "" && !strings.HasSuffix(got, last) {
		return fmt.Sprintf("got %q, the page shows %q", got, want)
	}
	return ""
}

// parser reads JSON; lenient, it also takes a page's elisions ("…", "...") and JSON cut off at the end.
type parser struct {
	s       string
	i       int
	lenient bool
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *parser) eof() bool { p.skipSpace(); return p.i >= len(p.s) }

func (p *parser) elision() bool {
	if !p.lenient {
		return false
	}
	p.skipSpace()
	for _, e := range []string{"...", "…"} {
		if strings.HasPrefix(p.s[p.i:], e) {
			p.i += len(e)
			return true
		}
	}
	return false
}

func (p *parser) errorf(format string, a ...any) error {
	line := 1 + strings.Count(p.s[:min(p.i, len(p.s))], "\n")
	return fmt.Errorf("line %d: "+format, append([]any{line}, a...)...)
}

func (p *parser) value() (any, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, p.errorf("JSON ends early")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.s) && strings.ContainsRune("+-.eE0123456789", rune(p.s[p.i])) {
			p.i++
		}
		f, err := strconv.ParseFloat(p.s[start:p.i], 64)
		if err != nil {
			return nil, p.errorf("bad number %q", p.s[start:p.i])
		}
		return f, nil
	}
	for lit, v := range map[string]any{"true": true, "false": false, "null": nil} {
		if strings.HasPrefix(p.s[p.i:], lit) {
			p.i += len(lit)
			return v, nil
		}
	}
	return nil, p.errorf("unexpected %q", p.s[p.i:min(p.i+20, len(p.s))])
}

func (p *parser) object() (any, error) {
	p.i++ // {
	m := map[string]any{}
	open := false
	for {
		if p.eof() {
			if !p.lenient {
				return nil, p.errorf("JSON ends early")
			}
			return openObject(m), nil // cut off on the page
		}
		if p.elision() { //nolint:gocritic // ifElseChain: a switch would take the loop's break for its own
			open = true
		} else if p.s[p.i] == '}' {
			p.i++
			break
		} else {
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, p.errorf("no ':' after key %q", k)
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
		}
	}
	if open {
		return openObject(m), nil
	}
	return m, nil
}

func (p *parser) array() (any, error) {
	p.i++ // [
	a := []any{}
	open := false
	for {
		if p.eof() {
			if !p.lenient {
				return nil, p.errorf("JSON ends early")
			}
			return openArray(a), nil
		}
		if p.elision() { //nolint:gocritic // ifElseChain: a switch would take the loop's break for its own
			open = true
		} else if p.s[p.i] == ']' {
			p.i++
			break
		} else {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
		}
	}
	if open {
		return openArray(a), nil
	}
	return a, nil
}

func (p *parser) str() (string, error) {
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", p.errorf("expected a string")
	}
	start := p.i
	p.i++
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			s, err := strconv.Unquote(jsonToGoQuoted(p.s[start:p.i]))
			if err != nil {
				return "", p.errorf("bad string %s", p.s[start:p.i])
			}
			return s, nil
		}
		_, size := utf8.DecodeRuneInString(p.s[p.i:])
		p.i += size
	}
	return "", p.errorf("string not closed")
}

// jsonToGoQuoted makes a JSON string literal one strconv.Unquote reads: JSON's \/ is not Go's.
func jsonToGoQuoted(s string) string { return strings.ReplaceAll(s, `\/`, `/`) }
