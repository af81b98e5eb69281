"""`mathagent serve`: the verifier as an HTTP service (its own API and kimina-lean-server's).

FastAPI and uvicorn are imported only here, so the rest of mathagent starts
without them.
"""

from mathagent.serve.app import create_app
from mathagent.serve.limits import ServeLimits
from mathagent.serve.server import Listen, run
from mathagent.serve.service import CheckService, ServiceConfig
from mathagent.serve.statements import Statements

__all__ = ["CheckService", "Listen", "ServeLimits", "ServiceConfig", "Statements", "create_app", "run"]
