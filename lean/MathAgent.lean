import MathAgent.Header
