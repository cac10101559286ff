package bench

import "time"

// pacer sleeps the dispatcher until a request is due.
type pacer interface {
	sleep(d time.Duration)
	close()
}

// timerPacer sleeps with the Go timer.
type timerPacer struct{}

func (timerPacer) sleep(d time.Duration) { time.Sleep(d) }
func (timerPacer) close()                {}
