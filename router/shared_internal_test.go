package router

import (
	"net/http"
	"testing"
)

// shared counts the middleware two groups have in common: those of their
// nearest common group as each inherited them, whatever Use added to it
// after a child was made.
func TestSharedMiddleware(t *testing.T) {
	mw := func(h http.Handler) http.Handler { return h }
	r := New()
	a := r.With(mw, mw)  // 2
	a1 := a.With(mw)     // 3, 2 of them a's
	a.Use(mw)            // a: 3 now; a1 keeps its 2
	a2 := a.With(mw, mw) // 5, 3 of them a's
	a21 := a2.With(mw)   // 6
	b := r.With(mw)      // 1, none shared with a
	for _, tc := range []struct {
		name string
		x, y *Router
		want int
	}{
		{"itself", a2, a2, 5},
		{"parent and child", a, a2, 3},
		{"child made before the parent's Use", a, a1, 2},
		{"siblings", a1, a2, 2},
		{"cousin and nephew", a1, a21, 2},
		{"grandchild", a21, a, 3},
		{"unrelated groups", a21, b, 0},
		{"the top router", r, a2, 0},
	} {
		if got := shared(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: shared = %d, want %d", tc.name, got, tc.want)
		}
		if got := shared(tc.y, tc.x); got != tc.want {
			t.Errorf("%s, reversed: shared = %d, want %d", tc.name, got, tc.want)
		}
	}
}
