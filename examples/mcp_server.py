"""Tools of your own over MCP (stdio), written with the official SDK: `imaginarium tools list --tools-from "mcp:python examples/mcp_server.py"`."""
from mcp.server.mcpserver import MCPServer

server = MCPServer(name="city-facts")
CITIES = {"Lima": ("Peru", 10_092_000), "Oslo": ("Norway", 709_000), "Nairobi": ("Kenya", 4_397_000),
          "Hanoi": ("Vietnam", 8_054_000), "Quito": ("Ecuador", 2_011_000)}


@server.tool()
def city_population(city: str) -> dict:
    """The country and population of a city (Lima, Oslo, Nairobi, Hanoi or Quito)."""
    country, population = CITIES[city.strip().title()]
    return {"city": city, "country": country, "population": population}


if __name__ == "__main__":
    server.run()
