"""The agent-strategy route: pkg/entities/requests/agent.go and pkg/entities/agent_entities."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.families.tool import ToolResponseChunk
from emulator.contract.gotypes import Go, GoStruct


class InvokeAgentStrategySchema(GoStruct):
    agent_strategy_provider: Annotated[str, Go(validate="required")] = ""
    agent_strategy: Annotated[str, Go(validate="required")] = ""
    agent_strategy_params: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class RequestInvokeAgentStrategy(InvokeAgentStrategySchema):
    pass


class AgentStrategyResponseChunk(ToolResponseChunk):
    """Embeds the tool chunk (tagged `json:",inline"`, which encoding/json reads as embedding)."""
