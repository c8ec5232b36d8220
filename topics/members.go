package topics

import "iter"

// Members yields the hub's members whose connections are open, in no
// particular order, for monitoring: the observe package reads their
// queues (Member.Buffered) this way. Members that join or leave while the
// loop runs may or may not be yielded.
func (h *Hub) Members() iter.Seq[*Member] {
	return func(yield func(*Member) bool) {
		h.joined.Range(func(m, _ any) bool {
			return yield(m.(*Member))
		})
	}
}
