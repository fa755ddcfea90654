"""Egress: a run or session reaches exactly the hosts it was allowed, through a checked proxy.

The sandbox keeps no network interface but ``lo``; its runner relays
``127.0.0.1:3128`` (and published ports) to Unix sockets that the daemon's
proxy serves, one folder of sockets per sandbox, bind-mounted into it::

    from ai_data_agent.egress.proxy import EgressProxy

    proxy = EgressProxy(settings)
    lease = proxy.open(run_id, allow=["files.example.com:443"])
    ...  # the container mounts lease.host_dir; its code uses HTTPS_PROXY
    lease.close()

Modules: `rules` (the allow- and deny-list syntax), `addresses` (which
addresses are reachable), `policy` (one sandbox's checks and caps),
`resolver`, `http` and `tls` (what the proxy reads), `tunnel`, `connection`
and `proxy` (the asyncio server), `log` (one event per connection, to sinks).
This package imports nothing itself, so that `settings` can use `rules`.
"""
