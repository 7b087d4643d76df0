import React, { useState } from "react";

export const MAX_ITEMS = 50;

/** One row of the list. */
export function TodoItem({ item, onToggle }) {
  return (
    <li onClick={() => onToggle(item.id)}>
      {item.done ? <s>{item.text}</s> : item.text}
    </li>
  );
}

export const TodoList = ({ items }) => {
  const [filter, setFilter] = useState("all");
  return <ul>{items.slice(0, MAX_ITEMS).map((item) => <TodoItem key={item.id} item={item} />)}</ul>;
};

class Store {
  items = [];

  add(text) {
    this.items.push({ id: this.items.length, text, done: false });
  }

  toggle = (id) => {
    this.items[id].done = !this.items[id].done;
  };
}

export default Store;
