package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress tells a person watching a long run what it is doing and how
// far it has got: one status line, rewritten in place, with the step
// (scenario i of n, library, round), the elapsed time and an estimate of
// the time left. It writes nothing unless its output is a terminal, so
// that logs, pipes and -json - stay clean.
type progress struct {
	w       io.Writer // nil when quiet
	start   time.Time
	steps   []progressStep
	done    int
	spent   map[string]time.Duration // per scenario, the steps done so far
	count   map[string]int
	lastLen int
}

// A progressStep is one scenario run against one library in one round.
type progressStep struct {
	scenario string
	index    int // the scenario's position, from 1
	lib      string
	round    int // from 1
	rounds   int
	guess    time.Duration // before any step of its scenario has run
}

// newProgress returns a progress reporter for steps, writing to w if w is
// a terminal and quiet is false.
func newProgress(w io.Writer, quiet bool, steps []progressStep) *progress {
	p := &progress{start: time.Now(), steps: steps, spent: map[string]time.Duration{}, count: map[string]int{}}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		p.w = w
	}
	return p
}

// begin shows the step about to run.
func (p *progress) begin(nScenarios int) {
	if p.w == nil || p.done >= len(p.steps) {
		return
	}
	s := p.steps[p.done]
	line := fmt.Sprintf("wsbench: scenario %d/%d %s · %s", s.index, nScenarios, s.scenario, s.lib)
	if s.rounds > 1 {
		line += fmt.Sprintf(" · round %d/%d", s.round, s.rounds)
	}
	line += fmt.Sprintf(" · step %d/%d · elapsed %s · ETA %s",
		p.done+1, len(p.steps), roundDur(time.Since(p.start)), roundDur(p.remaining()))
	p.show(line)
}

// end records that the current step took d and prints what it measured
// on a line of its own.
func (p *progress) end(d time.Duration, result string) {
	if p.done < len(p.steps) {
		s := p.steps[p.done]
		p.spent[s.scenario] += d
		p.count[s.scenario]++
		p.done++
		if p.w != nil {
			p.show(fmt.Sprintf("wsbench: %-9s %-12s %s", s.scenario, s.lib, result))
			fmt.Fprintln(p.w)
			p.lastLen = 0
		}
	}
}

// finish clears the status line.
func (p *progress) finish() {
	if p.w != nil && p.lastLen > 0 {
		p.show("")
	}
}

// remaining estimates the time the steps not yet done will take: each at
// the mean of the finished steps of its scenario, or at its guess.
func (p *progress) remaining() time.Duration {
	var total time.Duration
	for _, s := range p.steps[p.done:] {
		if n := p.count[s.scenario]; n > 0 {
			total += p.spent[s.scenario] / time.Duration(n)
		} else {
			total += s.guess
		}
	}
	return total
}

func (p *progress) show(line string) {
	pad := ""
	if n := p.lastLen - len([]rune(line)); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.lastLen = len([]rune(line))
}

// roundDur rounds d for display: seconds below an hour.
func roundDur(d time.Duration) string {
	return d.Round(time.Second).String()
}
