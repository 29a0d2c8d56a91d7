package cluster

import (
	"fmt"
	"sync"
	"time"
)

// ControlledClock is a Clock whose wall clock can be offset and whose
// monotonic clock can run at a different rate, for fault injection
// (libfaketime does not work on Go binaries). A node uses it only when
// started with --unsafe-clock-control.
//
// An offset models a wall clock that is wrong or jumps (NTP steps, an
// operator's date command): cluster time must not notice. A rate models a
// monotonic clock that runs fast or slow: cluster time follows it on the
// leader, so clients must keep a safety margin larger than the drift.
type ControlledClock struct {
	mu      sync.Mutex
	offset  time.Duration // added to the wall clock
	rate    float64       // monotonic time advances rate times real time
	anchor  time.Time     // real time of the last rate change
	virtual time.Time     // the clock's Now at anchor
}

// NewControlledClock returns a clock that starts out true.
func NewControlledClock() *ControlledClock {
	now := time.Now()
	return &ControlledClock{rate: 1, anchor: now, virtual: now}
}

// Now returns the (possibly rate-skewed) time with a monotonic reading.
func (c *ControlledClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *ControlledClock) nowLocked() time.Time {
	elapsed := time.Since(c.anchor)
	return c.virtual.Add(time.Duration(float64(elapsed) * c.rate))
}

// Wall returns the wall clock plus the offset.
func (c *ControlledClock) Wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Round(0).Add(c.offset)
}

// Set changes the wall-clock offset and the monotonic rate (0 < rate ≤ 10).
// The monotonic clock stays continuous: a new rate applies from now on.
func (c *ControlledClock) Set(offset time.Duration, rate float64) error {
	if rate <= 0 || rate > 10 {
		return fmt.Errorf("rate %v out of (0, 10]", rate)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.virtual = c.nowLocked()
	c.anchor = time.Now()
	c.offset, c.rate = offset, rate
	return nil
}

// Get returns the current offset and rate.
func (c *ControlledClock) Get() (time.Duration, float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.rate
}
