//go:build linux

package slab

import (
	"fmt"
	"syscall"
	"unsafe"
)

// runsPerChunk makes chunks of 64 MiB of address space.
const runsPerChunk = 256

// mapChunk maps size bytes of address space for runs. MAP_NORESERVE:
// pages cost memory only once touched. MADV_NOHUGEPAGE: a huge page would
// make one touched slot cost 2 MiB, and keep whole huge pages resident
// after the slots on them are given back; the advice is best effort (a
// kernel without transparent huge pages refuses it, and has none).
func mapChunk(size int) ([]byte, error) {
	mem, err := mmap(size, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("slab: mapping a %d-byte chunk: %w", size, err)
	}
	_ = syscall.Madvise(mem, syscall.MADV_NOHUGEPAGE)
	return mem, nil
}

// mapLarge maps a large slot, its pages populated at once: the holder
// is about to write them all.
func mapLarge(size int) ([]byte, error) {
	mem, err := mmap(size, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("slab: mapping a %d-byte slot: %w", size, err)
	}
	return mem, nil
}

// mmap maps size bytes of anonymous memory. It calls the kernel itself
// rather than through syscall.Mmap, whose bookkeeping (a map of the
// mappings, allocated on the Go heap) only unmaps whole mappings: unmap
// also takes the tail of a large mapping reused for a smaller slot.
func mmap(size, flags int) ([]byte, error) {
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, 0, uintptr(size),
		syscall.PROT_READ|syscall.PROT_WRITE, uintptr(flags), ^uintptr(0), 0)
	if errno != 0 {
		return nil, errno
	}
	// Not unsafe.Pointer(addr), which vet rightly distrusts in general:
	// this memory is outside the Go heap, the collector never moves it.
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), size), nil
}

// unmap unmaps what mapChunk or mapLarge mapped, or whole pages of it.
func unmap(mem []byte) error {
	_, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// release gives whole pages back to the kernel: they read as zeros when
// touched again.
func release(mem []byte) error { return syscall.Madvise(mem, syscall.MADV_DONTNEED) }
