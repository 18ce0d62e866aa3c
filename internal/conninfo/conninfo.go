// Package conninfo reads a libpq connection string (keyword/value or
// postgres:// URL) into its parameters, so that pgward can hand pg_dump
// and pg_restore a database of its choosing and the password through the
// environment: a password on a command line is visible to every user of
// the host in ps.
package conninfo

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Params are a connection string's parameters, in the order written.
type Params struct {
	keys, values []string
}

// Parse reads s, checking it as libpq would through pgconn. Errors never
// quote s: it may hold a password.
func Parse(s string) (Params, error) {
	if _, err := pgconn.ParseConfig(s); err != nil {
		return Params{}, errors.New("invalid connection string (not shown: it may hold a password); " +
			"write host=… port=… user=… dbname=… or postgres://user@host:port/dbname")
	}
	if isURL(s) {
		return parseURL(s)
	}
	return parseKeywords(s)
}

// HasPassword reports whether the connection string s carries a secret
// itself: a password (or sslpassword) keyword, a password in a URL's user
// info, or one in a URL's query. An empty value does not count. It reads s
// as Parse does but without libpq's checks or the PG* environment (which
// may hold a password that s does not), so that it answers for strings
// that are otherwise invalid too; a string it cannot read at all counts as
// holding a password when one might be there.
func HasPassword(s string) bool {
	var (
		p   Params
		err error
	)
	if isURL(s) {
		p, err = parseURL(s)
	} else {
		p, err = parseKeywords(s)
	}
	if err != nil {
		return mayHoldPassword(s)
	}
	for i, k := range p.keys {
		if (strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword")) && p.values[i] != "" {
			return true
		}
	}
	return false
}

// mayHoldPassword is HasPassword's answer for a string it cannot read.
func mayHoldPassword(s string) bool {
	if strings.Contains(strings.ToLower(s), "password") {
		return true
	}
	if !isURL(s) {
		return false
	}
	_, rest, _ := strings.Cut(s, "://")
	userinfo, _, found := strings.Cut(rest, "@")
	return found && strings.Contains(userinfo, ":")
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

func parseURL(s string) (Params, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Params{}, errors.New("invalid connection URL (not shown: it may hold a password)")
	}
	var p Params
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			p.Set("user", name)
		}
		if pw, ok := u.User.Password(); ok {
			p.Set("password", pw)
		}
	}
	var hosts, ports []string
	for _, hp := range strings.Split(u.Host, ",") {
		if hp == "" {
			continue
		}
		host, port := hp, ""
		if i := strings.LastIndexByte(hp, ':'); i >= 0 && !strings.HasSuffix(hp, "]") {
			host, port = hp[:i], hp[i+1:]
		}
		hosts = append(hosts, strings.Trim(host, "[]"))
		ports = append(ports, port)
	}
	if len(hosts) > 0 {
		p.Set("host", strings.Join(hosts, ","))
		if strings.Join(ports, "") != "" {
			p.Set("port", strings.Join(ports, ","))
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		p.Set("dbname", db)
	}
	for k, vs := range u.Query() {
		if len(vs) > 0 {
			p.Set(k, vs[len(vs)-1])
		}
	}
	return p, nil
}

// parseKeywords reads key = value pairs; a value may be single-quoted,
// with \' and \\ inside.
func parseKeywords(s string) (Params, error) {
	var p Params
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i == len(s) {
			return p, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[start:i]
		skip()
		if i == len(s) || s[i] != '=' || key == "" {
			return Params{}, errors.New("invalid connection string: want key=value pairs")
		}
		i++
		skip()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i == len(s) {
					return Params{}, errors.New("invalid connection string: unterminated quoted value")
				}
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					val.WriteByte(s[i])
					i++
					continue
				}
				if c == '\'' {
					break
				}
				val.WriteByte(c)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		p.Set(key, val.String())
	}
}

// Get returns the value of key, or "".
func (p Params) Get(key string) string {
	for i, k := range p.keys {
		if k == key {
			return p.values[i]
		}
	}
	return ""
}

// Set replaces key's value, or adds it.
func (p *Params) Set(key, value string) {
	for i, k := range p.keys {
		if k == key {
			p.values[i] = value
			return
		}
	}
	p.keys = append(p.keys, key)
	p.values = append(p.values, value)
}

// With returns a copy of p with key set to value.
func (p Params) With(key, value string) Params {
	q := Params{keys: append([]string(nil), p.keys...), values: append([]string(nil), p.values...)}
	q.Set(key, value)
	return q
}

// Without returns a copy of p without key.
func (p Params) Without(key string) Params {
	var q Params
	for i, k := range p.keys {
		if k != key {
			q.Set(k, p.values[i])
		}
	}
	return q
}

// String writes p as a keyword/value connection string.
func (p Params) String() string {
	var b strings.Builder
	for i, k := range p.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := strings.ReplaceAll(strings.ReplaceAll(p.values[i], `\`, `\\`), `'`, `\'`)
		fmt.Fprintf(&b, "%s='%s'", k, v)
	}
	return b.String()
}

// Command returns what a libpq client (pg_dump, psql) needs to connect as
// p: a connection string without the password for its command line, and
// the environment that carries the password (PGPASSWORD), if any.
func (p Params) Command() (connString string, env []string) {
	if pw := p.Get("password"); pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	return p.Without("password").String(), env
}

// Describe names the server and database for messages, without secrets.
func (p Params) Describe() string {
	host := p.Get("host")
	if host == "" {
		host = "local socket"
	}
	if port := p.Get("port"); port != "" {
		host += ":" + port
	}
	if db := p.Get("dbname"); db != "" {
		return fmt.Sprintf("database %q on %s", db, host)
	}
	return host
}
