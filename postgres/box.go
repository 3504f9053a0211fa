package postgres

import (
	"time"
	"unsafe"
)

// Boxing a value into an interface (what putting an int64, a string or a
// time.Time in the row's []any does) allocates a copy of it on the heap: one
// allocation per value. In BenchmarkScan that was six allocations a row and
// about 750 ns of client CPU per row; carving the copies out of blocks
// instead brought it to about 550 ns. A box builds the interface around a
// pointer into its current block. A block is only appended to, never
// rewritten, so each boxed value is as immutable as one the runtime boxed
// itself; a value the sink keeps keeps its block alive.

// eface is the layout of an empty interface: type word, then data pointer.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// typeOf returns the type word of v's dynamic type.
func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// boxBlock is the number of values per block.
const boxBlock = 512

// box hands out interfaces holding values of type T.
type box[T any] struct {
	typ   unsafe.Pointer
	block []T
}

func newBox[T any]() box[T] {
	var zero T
	return box[T]{typ: typeOf(zero)}
}

// put returns v as an interface, its data in the current block.
func (b *box[T]) put(v T) any {
	if len(b.block) == cap(b.block) {
		b.block = make([]T, 0, boxBlock)
	}
	b.block = append(b.block, v)
	var out any
	e := (*eface)(unsafe.Pointer(&out))
	e.typ, e.data = b.typ, unsafe.Pointer(&b.block[len(b.block)-1])
	return out
}

// boxes holds a box per Go type the decoder produces. bool needs none: the
// runtime boxes single bytes without allocating.
type boxes struct {
	str   box[string]
	bytes box[[]byte]
	i16   box[int16]
	i32   box[int32]
	i64   box[int64]
	f32   box[float32]
	f64   box[float64]
	time  box[time.Time]
}

func newBoxes() boxes {
	return boxes{
		str: newBox[string](), bytes: newBox[[]byte](),
		i16: newBox[int16](), i32: newBox[int32](), i64: newBox[int64](),
		f32: newBox[float32](), f64: newBox[float64](),
		time: newBox[time.Time](),
	}
}
