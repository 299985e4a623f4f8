package queue

import "math/bits"

// MaxLanes is the most lanes (one per broker) a Store holds.
const MaxLanes = 64

// Targets is a set of a Store's lanes: bit i is the lane at index i of StoreOptions.Lanes. A
// message appended with Store.Append is stored, in the same commit, in every lane of its Targets.
type Targets uint64

// Lane returns the set holding only the lane at index i.
func Lane(i int) Targets { return Targets(1) << uint(i) }

// Has reports whether the lane at index i is in t.
func (t Targets) Has(i int) bool { return i >= 0 && i < MaxLanes && t&Lane(i) != 0 }

// Len is the number of lanes in t.
func (t Targets) Len() int { return bits.OnesCount64(uint64(t)) }

// Each calls fn with the index of every lane in t, in increasing order.
func (t Targets) Each(fn func(i int)) {
	for v := uint64(t); v != 0; v &= v - 1 {
		fn(bits.TrailingZeros64(v))
	}
}
