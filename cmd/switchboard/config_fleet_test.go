package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/configs"
)

// TestAdminListenNeedsTokenOffLoopback: an admin listener other hosts can
// reach refuses to start without a token, at the line of admin.listen.
func TestAdminListenNeedsTokenOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name, admin string
		ok          bool
	}{
		{"loopback without a token", "listen: 127.0.0.1:8080", true},
		{"IPv6 loopback without a token", "listen: '[::1]:8080'", true},
		{"off", `listen: ""`, true},
		{"any address with a token", "listen: 0.0.0.0:8080\n  token: s3cret", true},
		{"any address with a token file", "listen: 0.0.0.0:8080\n  token_file: /run/secrets/admin", true},
		{"any address without a token", "listen: 0.0.0.0:8080", false},
		{"IPv6 any address without a token", "listen: '[::]:8080'", false},
		{"a LAN address without a token", "listen: 10.1.2.3:8080", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "log:\n  level: info\nadmin:\n  "+tc.admin+"\n")
			_, err := LoadConfig(path, configs.DefaultGateway())
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted an admin listener open to other hosts without a token")
			}
			if want := path + ":4: admin.listen:"; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "set admin.token") {
				t.Fatalf("error %q, want it to start %q and say to set admin.token", err, want)
			}
		})
	}
}

// TestStoreURLForms: every URL form the store connects with passes
// validation, unix sockets included.
func TestStoreURLForms(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379/0", true},
		{"rediss://user:pw@redis.example.com:6380/1", true},
		{"unix:///run/redis/redis.sock", true},
		{"unix:///run/redis/redis.sock?db=2", true},
		{"redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379", true},
		{"redis://node1:7000?addr=node2:7000&addr=node3:7000", true},
		{"unix://", false},
		{"http://127.0.0.1:6379", false},
		{"127.0.0.1:6379", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			path := writeConfig(t, "store:\n  type: redis\n  url: "+tc.url+"\n")
			_, err := LoadConfig(path, configs.DefaultGateway())
			if (err == nil) != tc.ok {
				t.Fatalf("LoadConfig = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestCDRSinkDefaults: by default CDRs go to the Redis stream with a redis
// store and to cdr.jsonl next to the config otherwise; a file named in the
// config is written as well as the stream.
func TestCDRSinkDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, cfg      string
		file           string // relative to the config's directory; "" none
		auto, stream   bool
		embeddedConfig bool
	}{
		{"embedded defaults: the file in the working directory", "", "cdr.jsonl", true, false, true},
		{"memory store: the file next to the config", "", "cdr.jsonl", true, false, false},
		{"redis store: the stream", "store:\n  type: redis\n  url: redis://127.0.0.1:6379\n", "", true, true, false},
		{"redis store, stream off: the file", "store:\n  type: redis\n  url: redis://127.0.0.1:6379\ncdr:\n  redis_stream: false\n", "cdr.jsonl", true, false, false},
		{"redis store and a named file: both", "store:\n  type: redis\n  url: redis://127.0.0.1:6379\ncdr:\n  file: /var/log/cdr.jsonl\n", "/var/log/cdr.jsonl", false, true, false},
		{"memory store, no file: nothing", "cdr:\n  file: \"\"\n", "", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := "", ""
			if !tc.embeddedConfig {
				path = writeConfig(t, "log:\n  level: info\n"+tc.cfg)
				dir = filepath.Dir(path)
			}
			cfg, err := LoadConfig(path, configs.DefaultGateway())
			if err != nil {
				t.Fatal(err)
			}
			file, auto, stream := cfg.CDR.cdrSinks(cfg.Store.Type)
			want := tc.file
			if want != "" && !filepath.IsAbs(want) {
				want = filepath.Join(dir, want)
			}
			if file != want || auto != tc.auto || stream != tc.stream {
				t.Fatalf("cdrSinks = %q auto %v stream %v; want %q auto %v stream %v", file, auto, stream, want, tc.auto, tc.stream)
			}
		})
	}
}

// TestRetryAfterLoads: limits.retry_after is read, and must not be negative.
func TestRetryAfterLoads(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "limits:\n  retry_after: 30\n"), configs.DefaultGateway())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.RetryAfterSec != 30 {
		t.Fatalf("retry_after = %d", cfg.Limits.RetryAfterSec)
	}
	if _, err := LoadConfig(writeConfig(t, "limits:\n  retry_after: -1\n"), configs.DefaultGateway()); err == nil || !strings.Contains(err.Error(), "limits.retry_after") {
		t.Fatalf("negative retry_after: %v", err)
	}
}
