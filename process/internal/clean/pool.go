package clean

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// poolAllocator is an Arrow allocator that reuses buffers by power-of-two
// size class. Clean builds and releases thousands of batches of the same
// shape; Go's allocator would clear and collect every one of them.
type poolAllocator struct {
	classes [48]sync.Pool
}

var _ memory.Allocator = (*poolAllocator)(nil)

// alignment matches Arrow's Go allocator: buffers start on 64 bytes.
const alignment = 64

func sizeClass(size int) int {
	if size <= alignment {
		return bits.Len(uint(alignment - 1))
	}
	return bits.Len(uint(size - 1))
}

func (p *poolAllocator) Allocate(size int) []byte {
	c := sizeClass(size)
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		buf := (*b)[:size]
		clear(buf) // Arrow expects zeroed memory (validity bitmaps)
		return buf
	}
	buf := make([]byte, 1<<c+alignment)
	off := alignment - int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%alignment)
	if off == alignment {
		off = 0
	}
	return buf[off : off+size : off+1<<c]
}

func (p *poolAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

func (p *poolAllocator) Free(b []byte) {
	c := bits.Len(uint(cap(b) - 1))
	if cap(b) != 1<<c || c >= len(p.classes) {
		return // not ours, or not a whole class: let the GC have it
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
