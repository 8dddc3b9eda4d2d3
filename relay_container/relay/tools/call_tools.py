"""`transfer_to_human` and `end_call`: the tool only decides and tells the model what to say; the call session
carries the action out on the audio path (the transfer after the hand-off sentence, the hang-up after the goodbye
has been heard)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from relay.tools.base import EndCallRequest, Tool, ToolContext, ToolOutcome, TransferRequest


class TransferArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=200, description="Why a human is needed, in a few words.")
    summary: str = Field(
        min_length=1,
        max_length=1000,
        description="Two or three sentences for the staff member who picks up: who is calling (name if given), "
        "what they want, what has been done so far. No card numbers or passwords.",
    )


class TransferToHuman(Tool[TransferArgs]):
    name = "transfer_to_human"
    description = (
        "Hand the call to a human member of staff. Use it when the caller asks for a person, when they are upset, "
        "or when you cannot help (a complaint, a question outside what you can do). The result tells you what to "
        "say; say it in one short sentence and then stop talking."
    )
    arguments = TransferArgs

    async def run(self, args: TransferArgs, ctx: ToolContext) -> ToolOutcome:
        settings = ctx.settings
        # The hand-off needs both a number to ring and the call-control API that redirects the live call.
        if not ctx.human_transfer_number or not settings.call_control_url:
            return ToolOutcome(
                output={
                    "transferring": False,
                    "reason": "no_human_line",
                    "say": "No one can take the call right now. Apologise, offer to take a message with the "
                    "caller's name and what it is about, or to help further yourself.",
                }
            )
        return ToolOutcome(
            output={
                "transferring": True,
                "say": "Tell the caller in one short sentence that you are connecting them to a member of the "
                "team now, then say nothing more.",
            },
            action=TransferRequest(reason=args.reason.strip(), summary=args.summary.strip()),
        )


class EndCallArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(
        min_length=1, max_length=200, description="Why the call is ending, e.g. 'caller's questions answered'."
    )


class EndCall(Tool[EndCallArgs]):
    name = "end_call"
    description = (
        "End the call. Use it only when the conversation is clearly finished: the caller has said goodbye or "
        "confirmed they need nothing else. After calling it, say one brief, friendly goodbye; the line is hung "
        "up once the goodbye has been heard."
    )
    arguments = EndCallArgs

    async def run(self, args: EndCallArgs, ctx: ToolContext) -> ToolOutcome:
        return ToolOutcome(
            output={
                "ending_call": True,
                "say": "Say a brief goodbye now, in one short sentence. The call ends after it.",
            },
            action=EndCallRequest(reason=args.reason.strip()),
        )
