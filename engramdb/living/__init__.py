"""Living memory (issue 12): what organises the memories once they are stored."""
