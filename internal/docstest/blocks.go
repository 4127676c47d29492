package docstest

import (
	"bufio"
	"strconv"
	"strings"
)

// Block is one fenced code block of a Markdown page.
type Block struct {
	File    string // the page, relative to the repository root
	Line    int    // line of the opening fence
	Lang    string // the fence's info string: "console", "sh"…
	Section string // the heading the block sits under
	Text    string // the block's lines
}

// Name is how a failure or the skip table names the block: page, line and first line.
func (b Block) Name() string {
	first, _, _ := strings.Cut(b.Text, "\n")
	return b.File + ":" + strconv.Itoa(b.Line) + " `" + first + "`"
}

// Blocks returns the fenced code blocks of a Markdown page, in order.
func Blocks(file, markdown string) []Block {
	var out []Block
	var cur *Block
	var lines []string
	section := ""
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur == nil {
			if strings.HasPrefix(trimmed, "```") {
				cur = &Block{File: file, Line: n, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), Section: section}
				lines = nil
				continue
			}
			if strings.HasPrefix(line, "#") {
				section = strings.TrimSpace(strings.TrimLeft(line, "#"))
			}
			continue
		}
		if trimmed == "```" {
			cur.Text = strings.Join(dedent(lines), "\n")
			out = append(out, *cur)
			cur = nil
			continue
		}
		lines = append(lines, line)
	}
	return out
}

// dedent removes the indentation every line shares (a block inside a list item is indented).
func dedent(lines []string) []string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out[i] = l
	}
	return out
}

// Command is one command of a console block and the output the page shows for it.
type Command struct {
	Cmd    string // with continuation lines joined as the shell would read them
	Output string
}

// ConsoleCommands splits a console block into its "$ " commands (a line ending in a backslash continues on the
// next) and the lines shown after each.
func ConsoleCommands(text string) []Command {
	var out []Command
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.HasPrefix(line, "$ ") {
			if len(out) > 0 {
				out[len(out)-1].Output += line + "\n"
			}
			continue
		}
		cmd := strings.TrimPrefix(line, "$ ")
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd += "\n" + lines[i]
		}
		out = append(out, Command{Cmd: cmd})
	}
	for i := range out {
		out[i].Output = strings.TrimRight(out[i].Output, "\n ")
	}
	return out
}
