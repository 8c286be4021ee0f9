"""OpenAI's API in front of Bedrock, one module a job; nothing here touches Flask or the network.

- ``schemas``: the request bodies of /v1 (chat completions, embeddings, images);
- ``errors``: OpenAI's error shape, and what each failure is called in it;
- ``chat``: a chat-completions body → Converse arguments, Converse's whole answer → ``chat.completion``;
- ``stream``: ConverseStream events → ``chat.completion.chunk`` server-sent events (the /v1 dialect);
- ``embeddings`` and ``images``: those bodies ⇄ InvokeModel and the image service.

Named oai, not openai, so that nothing inside the package shadows the ``openai`` SDK.
"""
