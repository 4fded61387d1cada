package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// newClient builds the go-redis client for opt and reports whether the store
// owns it (and so closes it).
func newClient(opt RedisOptions) (redis.UniversalClient, bool, error) {
	if opt.Client != nil {
		return opt.Client, false, nil
	}
	u := &redis.UniversalOptions{
		Addrs: opt.Addrs, MasterName: opt.MasterName,
		Username: opt.Username, Password: opt.Password, DB: opt.DB,
	}
	if opt.URL != "" {
		var err error
		if u, err = parseURL(opt.URL); err != nil {
			return nil, false, fmt.Errorf("store: redis url: %w", err)
		}
	}
	failFast(u, opt.OpTimeout)
	return redis.NewUniversalClient(u), true, nil
}

// parseURL maps the three go-redis URL dialects onto UniversalOptions, so
// one setting in the gateway config covers a single node, Sentinel and
// Cluster.
func parseURL(s string) (*redis.UniversalOptions, error) {
	pu, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	q := pu.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(s)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName, ClientName: o.ClientName, DB: o.DB,
			Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			TLSConfig: o.TLSConfig, Protocol: o.Protocol,
			MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout,
			ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		}, nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(s)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{
			Addrs: o.Addrs, ClientName: o.ClientName, IsClusterMode: true,
			Username: o.Username, Password: o.Password,
			TLSConfig: o.TLSConfig, Protocol: o.Protocol,
			MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout,
			ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		}, nil
	}
	o, err := redis.ParseURL(s)
	if err != nil {
		return nil, err
	}
	u := &redis.UniversalOptions{
		Addrs: []string{o.Addr}, ClientName: o.ClientName, DB: o.DB,
		Username: o.Username, Password: o.Password,
		TLSConfig: o.TLSConfig, Protocol: o.Protocol,
		MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
	}
	if o.Network == "unix" {
		// UniversalOptions has no Network field; a dialer carries it.
		u.Dialer = unixDialer(o.Addr)
	}
	return u, nil
}

// failFast replaces go-redis' patient defaults (5 s dial and read timeouts,
// several dial retries) where the URL did not set them: a gateway admitting
// calls must learn within about a second that Redis is gone, and go-redis
// reconnects by itself once it is back.
func failFast(u *redis.UniversalOptions, op time.Duration) {
	if u.DialTimeout == 0 {
		u.DialTimeout = op
	}
	if u.ReadTimeout == 0 {
		u.ReadTimeout = op
	}
	if u.WriteTimeout == 0 {
		u.WriteTimeout = op
	}
	if u.PoolTimeout == 0 {
		u.PoolTimeout = op
	}
	if u.MaxRetries == 0 {
		u.MaxRetries = 1 // one retry covers a pooled connection that died with a Redis restart
	}
	u.DialerRetries = 1
	u.ContextTimeoutEnabled = true // our per-operation deadlines reach the socket
}

func unixDialer(path string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
