from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, List


class Category(enum.Enum):
    FOOD = "food"
    TOOL = "tool"
    TOY = "toy"


@dataclass
class Item:
    sku: str
    name: str
    category: Category
    price: float
    quantity: int = 0

    @property
    def value(self) -> float:
        return self.price * self.quantity


@dataclass
class Inventory:
    items: Dict[str, Item] = field(default_factory=dict)
    log: List[str] = field(default_factory=list)

    def add(self, item: Item) -> None:
        if item.sku in self.items:
            self.items[item.sku].quantity += item.quantity
        else:
            self.items[item.sku] = item
        self.log.append(f"add {item.sku} x{item.quantity}")

    def remove(self, sku: str, quantity: int) -> bool:
        item = self.items.get(sku)
        if item is None or item.quantity < quantity:
            self.log.append(f"refuse {sku} x{quantity}")
            return False
        item.quantity -= quantity
        self.log.append(f"remove {sku} x{quantity}")
        return True

    def low_stock(self, threshold: int = 3) -> List[str]:
        return sorted(sku for sku, item in self.items.items() if item.quantity <= threshold)

    def value_by_category(self) -> Dict[str, float]:
        totals: Dict[str, float] = {}
        for item in self.items.values():
            totals[item.category.value] = totals.get(item.category.value, 0.0) + item.value
        return {k: round(v, 2) for k, v in sorted(totals.items())}


if __name__ == "__main__":
    inv = Inventory()
    inv.add(Item("A1", "apple", Category.FOOD, 0.5, 40))
    inv.add(Item("H7", "hammer", Category.TOOL, 12.0, 2))
    inv.remove("A1", 38)
    print(inv.low_stock(), inv.value_by_category())
