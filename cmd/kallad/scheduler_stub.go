package main

import "context"

// runScheduler is replaced by the SchedulerCommand when it lands.
func runScheduler(ctx context.Context, args []string) error {
	return (&SchedulerCommand{}).Run(ctx, args)
}
