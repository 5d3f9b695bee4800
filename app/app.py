"""The ONE web app. The coordinator's API rides on the same process and port (api_transformer)."""

import reflex as rx

from app.pages.account import agents_page, balance_page, packages_page, worker_page
from app.pages.chat import chat_page, images_page
from app.pages.operator import OperatorState, operator_page
from app.pages.verify import VerifyState, verify_page
from backend.api import create_api
from backend.money.settlement import settlement_loop
from backend.money.sla import sla_loop
from backend.runtime import get_runtime


class OneApp(rx.App):
    """Reflex mounts the whole stack at "" under Starlette's `path` pattern, which stops at a newline, so the
    outermost router answers `/v1/models/%0A0` with a bare plain-text 404. Send what it cannot route to our API,
    whose catch-all answers in the OpenAI error shape."""

    def __call__(self):
        top = super().__call__()
        if hasattr(top, "router"):
            top.router.default = api
        return top


api = create_api()
app = OneApp(
    api_transformer=api,
    stylesheets=["/web/one.css"],
    head_components=[rx.el.link(rel="icon", href="/favicon.svg"), rx.el.script(type="module", src="/web/app.js")],
)
app.add_page(chat_page, route="/", title="ONE — chat")
app.add_page(images_page, route="/images", title="ONE — images")
app.add_page(balance_page, route="/balance", title="ONE — balance")
app.add_page(packages_page, route="/packages", title="ONE — packages")
app.add_page(agents_page, route="/agents", title="ONE — agents")
app.add_page(worker_page, route="/worker", title="ONE — earn with your browser")
app.add_page(verify_page, route="/verify", title="ONE — verify receipts", on_load=VerifyState.load_from_query)
app.add_page(operator_page, route="/operator", title="ONE — operator", on_load=OperatorState.check_session)


async def settlement() -> None:
    rt = get_runtime()
    await settlement_loop(rt.settings, rt.key)


async def agent_loop() -> None:
    await get_runtime().agents.loop()


async def sla_credits() -> None:
    rt = get_runtime()
    await sla_loop(rt.packages, rt.settings)


app.register_lifespan_task(settlement)
app.register_lifespan_task(agent_loop)
app.register_lifespan_task(sla_credits)
