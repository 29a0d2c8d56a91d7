// Package dockertest is the Docker suite: it builds the raftlock image with
// `make docker`, runs the 3-node cluster of docker/compose.yaml under a
// project name of its own, and checks what an operator relies on: the
// containers become healthy, any host port takes a lock, a killed leader
// container is replaced and the lock and its fencing token survive, the
// lock table outlives restarting and recreating every container (named
// volumes), and lockctl works inside a container.
//
// Every cluster test runs twice: plain (docker/compose.yaml), and with TLS
// and bearer tokens (docker/compose.tls.yaml on top, certificates made by
// `make docker-certs`, an --auth-tokens file), where plain text, a missing
// or unknown token and another tenant's key are refused as well.
//
// The tests are behind the docker build tag:
//
//	go test -tags docker -count=1 ./docker/...   # or: make docker-test
//
// They need Docker Engine and either `docker compose` or docker-compose,
// and fail, saying why, when those are missing: they never skip. Every
// container, network, volume and image they create is removed afterwards,
// also when a test fails.
package dockertest
