package console_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// env holds the Redis and PostgreSQL servers shared by the package's tests;
// each test uses its own key prefix and database.
var env *pipelinetest.Env

// browser is the one Chromium of the package's tests; each test opens its
// own browser context (cookies and storage of its own) in it.
var browser context.Context

// chromium is Debian's package (.ci/run installs it).
const chromium = "/usr/bin/chromium"

func TestMain(m *testing.M) {
	pipelinetest.Main(withBrowser{m}, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

type withBrowser struct{ m *testing.M }

func (w withBrowser) Run() int {
	if _, err := os.Stat(chromium); err != nil {
		fmt.Fprintf(os.Stderr, "console browser tests need %s (apt-get install chromium): %v\n", chromium, err)
		return 1
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.DisableGPU,
		// Chromium refuses to start as root with its sandbox on (CI
		// containers run as root).
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no timeout
		fmt.Fprintf(os.Stderr, "start %s: %v\n", chromium, err)
		return 1
	}
	browser = bctx
	return w.m.Run()
}
