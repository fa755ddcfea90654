"""The operator console: runs, sessions and health in a browser, served by the daemon at ``/console``.

    from ai_data_agent.service.console import PATH, console_app
    app.mount(PATH, console_app(node))      # one node, or a cluster's API node

Server-rendered (Jinja2, autoescaped), one small script of its own, no CDN and
no build step; behind the API's tokens, a signed HttpOnly cookie, CSRF tokens
and a strict Content-Security-Policy. Modules: `app` (the ASGI app and its
pages), `backend` (the only one that knows the node's protocols), `identity`
(tokens to principals), `cookies` (the signed visit, CSRF), `web` (the
middleware, the viewer, the form guard, rendering), `frames` (what users'
code produced, sandboxed), `pages` (the navigation), `login`, `runs`,
`sessions`, `health`, `highlight`, `templating`. See docs/console.md.
"""

from ai_data_agent.service.console.app import PATH, console_app

__all__ = ["PATH", "console_app"]
