class Codec:
    def pack(self, items: List[str]) -> str:
        return "".join(f"{len(item)}:{item}" for item in items)

    def unpack(self, text: str) -> List[str]:
        items, i = [], 0
        while i < len(text):
            colon = text.index(":", i)
            size = int(text[i:colon])
            items.append(text[colon + 1 : colon + 1 + size])
            i = colon + 1 + size
        return items


# Your Codec object will be instantiated and called as such:
# codec = Codec()
# codec.unpack(codec.pack(items))
