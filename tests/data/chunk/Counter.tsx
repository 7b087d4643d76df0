import { useState } from "react";

type CounterProps = { start?: number; label: string };

export function Counter({ start = 0, label }: CounterProps) {
  const [count, setCount] = useState(start);
  return (
    <button onClick={() => setCount(count + 1)}>
      {label}: {count}
    </button>
  );
}

export const Reset = ({ onReset }: { onReset: () => void }) => <button onClick={onReset}>reset</button>;
