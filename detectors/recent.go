package detectors

// recentIDs remembers hashes of the latest event ids applied to an entity,
// oldest first, to recognise an event delivered again.
type recentIDs []uint64

// seen reports whether h is remembered; if not, it remembers it, forgetting
// the oldest beyond capacity.
func (r *recentIDs) seen(h uint64, capacity int) bool {
	for _, x := range *r {
		if x == h {
			return true
		}
	}
	if len(*r) >= capacity {
		copy(*r, (*r)[1:])
		*r = (*r)[:capacity-1]
	}
	*r = append(*r, h)
	return false
}
